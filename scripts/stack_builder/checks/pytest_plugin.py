"""Shared fixtures for image tests: loaded with ``-p stack_builder.checks.pytest_plugin`` by the builder.

The image under test is named by the STACK_IMAGE environment variable.
"""
from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest

from stack_builder.engine.client import Engine, connect
from stack_builder.engine.containers import Container, GpuUnavailable, TrackedContainers
from stack_builder.settings import EngineSettings


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Engine]:
    client = connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image_ref() -> str:
    ref = EngineSettings.from_env().image  # this process was started for it: STACK_IMAGE
    if not ref:
        raise pytest.UsageError("STACK_IMAGE is not set: image tests are run by `stack-builder build`")
    return ref


class ImageContainers(TrackedContainers):
    """The image under test's containers for a test; with STACK_GPU=1 (`test_gpu`) each requests every GPU."""

    def start(self, command: str | list[str] | None = None, **kwargs: Any) -> Container:
        try:
            return super().start(command, **kwargs)
        except GpuUnavailable as exc:  # the gate working: the test fails and says why, without a traceback
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def container(docker_client: Engine, image_ref: str) -> Iterator[ImageContainers]:
    settings = EngineSettings.from_env()  # STACK_GPU, and the run, image and platform to label containers with
    tracked = ImageContainers(docker_client, image_ref, gpu=settings.gpu, settings=settings)
    yield tracked
    tracked.remove_all()


@pytest.fixture
def free_port() -> Iterator[int]:
    """A loopback TCP port kept for this test: publish a container's port on it, or serve on it.

    The kernel picks the port, and it stays bound (never listening) by a socket of the fixture
    until the test ends, so no other process or parallel worker can be given it meanwhile, and a
    connection to it is refused until something listens. The socket sets SO_REUSEADDR, so whatever
    is started on the port must bind with SO_REUSEADDR too: Docker's port publishing does (the
    engine must run on this host for a loopback port to mean anything), as do Go servers and
    Python's http.server/socketserver (allow_reuse_address).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
