"""Shared fixtures for image tests: loaded with ``-p stack_builder.checks.pytest_plugin`` by the builder.

The image under test is named by the STACK_IMAGE environment variable.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Iterator

import docker
import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image_ref() -> str:
    ref = os.environ.get("STACK_IMAGE")
    if not ref:
        raise pytest.UsageError("STACK_IMAGE is not set: image tests are run by `doit build`")
    return ref


NO_GPU_HINTS = ("could not select device driver", "nvidia-container-cli", "unknown or invalid runtime name: nvidia")


class TrackedContainers:
    """Starts containers of the image under test and always removes them.

    With STACK_GPU=1 (set by `doit test_gpu`) every container requests all GPUs, as `--gpus all` does.
    """

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.started: list[Any] = []
        self.gpu = os.environ.get("STACK_GPU") == "1"

    def run(self, command: str | list[str], **kwargs: Any) -> tuple[int, str]:
        """Run ``command`` to completion; return (exit code, combined output)."""
        timeout = kwargs.pop("timeout", 300)
        container = self.start(command, **kwargs)
        result = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return int(result["StatusCode"]), output

    def start(self, command: str | list[str] | None = None, **kwargs: Any) -> Any:
        if self.gpu:
            kwargs.setdefault("device_requests", [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
        try:
            container = self.client.containers.run(self.image, command, detach=True, **kwargs)
        except docker.errors.APIError as exc:
            if self.gpu and any(hint in str(exc) for hint in NO_GPU_HINTS):
                where = os.environ.get("DOCKER_HOST") or "the local engine"
                pytest.fail(f"no GPU available: the Docker engine at {where} cannot give this container a GPU "
                            f"({exc.explanation or exc}). Run on a GPU host with the NVIDIA container runtime, "
                            "e.g. DOCKER_HOST=ssh://user@gpu-host", pytrace=False)
            raise
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def container(docker_client: docker.DockerClient, image_ref: str) -> Iterator[TrackedContainers]:
    tracked = TrackedContainers(docker_client, image_ref)
    yield tracked
    tracked.remove_all()


@pytest.fixture
def free_port() -> int:
    """A TCP port free on the host right now (the kernel picks it, so parallel workers do not clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
