"""The Docker engine connection, with a clear message when there is none."""
from __future__ import annotations

import logging

import docker
import urllib3

from stack_builder import platforms
from stack_builder.errors import EngineError

LOGGER = logging.getLogger(__name__)

# Failures of the engine itself (not of a build step): the engine went away or refused. A streamed
# response (build, push) reads urllib3 directly, so a connection dying mid-stream is urllib3's error.
# The SDK's transport raises requests' errors, which are OSErrors.
ENGINE_FAILURES: tuple[type[BaseException], ...] = (docker.errors.DockerException, OSError,
                                                    urllib3.exceptions.HTTPError)
Engine = docker.DockerClient
# With TLS, the client is made at this API version (Docker 20.10's; later engines accept it), so that it does not
# ask the engine before ``trust_env`` is off: else requests lets REQUESTS_CA_BUNDLE replace the engine's CA.
TLS_API_VERSION = "1.41"


def engine_address() -> str:
    """The engine the docker SDK connects to (DOCKER_HOST, as it reads it), or "" for the local socket."""
    try:
        return str(docker.utils.kwargs_from_env().get("base_url") or "")
    except docker.errors.DockerException:  # a broken TLS set-up: connecting says what is wrong
        return ""


def connect(*, pool_size: int = 10, timeout: int = 600) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (default: the local socket), checked with a ping."""
    where = engine_address() or "unix:///var/run/docker.sock"
    try:
        settings = docker.utils.kwargs_from_env()
        if settings.get("tls"):
            client = docker.DockerClient(**settings, version=TLS_API_VERSION, timeout=timeout,
                                         max_pool_size=pool_size)
            client.api.trust_env = False
        else:
            client = docker.from_env(timeout=timeout, max_pool_size=pool_size)
        client.ping()
    except ENGINE_FAILURES as exc:
        raise EngineError(
            f"no Docker engine answers at {where} ({type(exc).__name__}). Start one: `bash setup.sh env` "
            "installs and starts dockerd on Debian, or run `dockerd &` as root; or point DOCKER_HOST at a "
            "running engine"
        ) from None
    LOGGER.debug("connected to the Docker engine at %s", where)
    return client


def native_platform(client: docker.DockerClient) -> str:
    """The platform ``client``'s engine builds without emulation, asked of that engine (a remote one may be of
    another architecture than this machine); this machine's when the engine does not say."""
    try:
        return platforms.engine_platform(client.info())
    except ENGINE_FAILURES as exc:
        LOGGER.warning("the engine did not say its architecture (%s); taking this machine's", type(exc).__name__)
        return platforms.host_platform()
