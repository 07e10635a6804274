"""Docker engines named in an ``--engines`` file: how to reach each one (a URL or a docker context), how a
child process reaches it (its environment), and whether it answers, with its own platform."""
from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import docker
import urllib3

from stack_builder import platforms
from stack_builder.engine.client import ENGINE_FAILURES, TLS_API_VERSION
from stack_builder.errors import EngineError, shown

LOGGER = logging.getLogger(__name__)

SCHEMES = ("unix://", "tcp://", "ssh://")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")  # DOCKER_CERT_PATH's layout
ENGINE_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT")


@dataclass(frozen=True)
class Endpoint:
    """One engine: its name (shown in reports), where it listens, and its TLS client files, if any."""

    name: str
    url: str  # unix://, tcp:// or ssh:// (a docker context is resolved to its host before this is made)
    tls: Path | None = None  # a folder with ca.pem, cert.pem and key.pem: TLS verified both ways

    @property
    def shown(self) -> str:
        """The engine as messages name it: its name and address (never a key or a certificate)."""
        return f"engine {self.name!r} ({self.url})"

    def env(self) -> dict[str, str]:
        """What a child process (the docker SDK, the docker CLI and its BuildKit client) needs to use it."""
        out = {"DOCKER_HOST": self.url}
        if self.tls is not None:
            out.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(self.tls))
        return out

    def connect(self, *, timeout: int = 60) -> docker.DockerClient:
        tls: docker.tls.TLSConfig | bool = False
        if self.tls is not None:
            tls = docker.tls.TLSConfig(client_cert=(str(self.tls / "cert.pem"), str(self.tls / "key.pem")),
                                       ca_cert=str(self.tls / "ca.pem"), verify=True)
        if not tls:
            return docker.DockerClient(base_url=self.url, timeout=timeout, use_ssh_client=self.url.startswith("ssh://"))
        client = docker.DockerClient(base_url=self.url, tls=tls, timeout=timeout, version=TLS_API_VERSION)
        client.api.trust_env = False  # the engine's CA, never REQUESTS_CA_BUNDLE's
        return client


def from_context(name: str, context: str) -> Endpoint:
    """The engine a docker context (``docker context ls``) points at; EngineError when there is none."""
    try:
        found = docker.context.ContextAPI.get_context(context)
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"engine {name!r}: the docker context {context!r} cannot be read: {shown(str(exc))}") \
            from None
    if found is None or not found.Host:
        raise EngineError(f"engine {name!r}: there is no docker context {context!r} (docker context ls lists "
                          "them), and it is not a unix://, tcp:// or ssh:// URL")
    tls_dir = Path(str(found.tls_path)) / "docker" if found.TLSConfig else None  # ca.pem, cert.pem, key.pem
    return Endpoint(name, str(found.Host), tls_dir)


def probe(endpoint: Endpoint, *, timeout: int = 30) -> str:
    """The platform the engine builds natively, asked of it; EngineError naming it when it does not answer."""
    try:
        client = endpoint.connect(timeout=timeout)
        try:
            client.ping()
            return platforms.engine_platform(client.info())
        finally:
            client.close()
    except ENGINE_FAILURES as exc:
        raise EngineError(f"{endpoint.shown} does not answer: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    text = str(exc)
    if _tls_failed(exc):
        return ("its TLS handshake failed (" + shown(text, 240) + "): check that the folder of `tls:` holds the "
                "CA that signed the engine's certificate and a client certificate the engine trusts")
    return f"{type(exc).__name__}: {shown(text, 240)}; check that it runs and that this machine may reach it"


def _tls_failed(exc: BaseException, depth: int = 0) -> bool:
    """Whether ``exc`` is, or wraps (as requests and urllib3 wrap it), a failed TLS handshake."""
    if isinstance(exc, (ssl.SSLError, urllib3.exceptions.SSLError)):
        return True
    if depth > 6:
        return False
    inner = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args]
    return any(isinstance(e, BaseException) and _tls_failed(e, depth + 1) for e in inner)
