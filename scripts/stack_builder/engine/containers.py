"""Containers with one lifecycle: created on entry, always removed on exit, and never waited on forever.

Files go in and out through the engine's archive API, not bind mounts, so this works the same on a
remote engine (DOCKER_HOST=ssh://...).
"""
from __future__ import annotations

import io
import logging
import tarfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import docker
from docker.models.containers import Container as Container  # re-exported: the type of what we start

from stack_builder.engine.client import ENGINE_FAILURES, engine_address
from stack_builder.errors import StackError, StepFailed
from stack_builder.settings import CONTAINER_TIMEOUT_VAR as TIMEOUT_VAR, IMAGE_NAME_VAR as IMAGE_VAR
from stack_builder.settings import PLATFORM_VAR, RUN_VAR, EngineSettings

LOGGER = logging.getLogger(__name__)

__all__ = ["Container", "Finished", "GpuUnavailable", "IMAGE_LABEL", "IMAGE_VAR", "PLATFORM_LABEL", "PLATFORM_VAR",
           "RUN_LABEL", "RUN_VAR", "TIMEOUT_VAR", "TrackedContainers", "created", "remove", "remove_labelled",
           "run", "run_env", "run_labelled", "run_labels", "timeout_s", "wait"]

RUN_LABEL, IMAGE_LABEL, PLATFORM_LABEL = "io.stack-builder.run", "io.stack-builder.image", "io.stack-builder.platform"

_RUNS: list[str] = []  # the ids of the runs this process is in (run_labelled), the innermost last
_RUNS_LOCK = threading.Lock()


def _current_run() -> str:
    with _RUNS_LOCK:
        return _RUNS[-1] if _RUNS else ""


def run_labels(inherited: EngineSettings | None = None) -> dict[str, str]:
    """The labels of every container the tool starts: the run's id, and the image and platform under test.

    The run is this process's (``run_labelled``), else the one its parent passed in STACK_RUN_ID; the image
    and platform are those an image's test process was started for (``inherited``: default, as set now)."""
    inherited = EngineSettings.from_env() if inherited is None else inherited
    labels = {RUN_LABEL: _current_run() or inherited.run_id, IMAGE_LABEL: inherited.image_name,
              PLATFORM_LABEL: inherited.platform}
    return {k: v for k, v in labels.items() if v}


@contextmanager
def run_labelled(run_id: str) -> Iterator[None]:
    """Every container this process starts meanwhile is labelled with ``run_id``; child processes get it in
    their environment from ``run_env()``."""
    with _RUNS_LOCK:
        _RUNS.append(run_id)
    try:
        yield
    finally:
        with _RUNS_LOCK:
            _RUNS.remove(run_id)


def run_env() -> dict[str, str]:
    """The environment a child process (an image's tests) needs to label its containers with this run."""
    current = _current_run()
    return {RUN_VAR: current} if current else {}


def _labelled(options: dict[str, Any], inherited: EngineSettings | None = None) -> dict[str, Any]:
    return {**options, "labels": {**(options.get("labels") or {}), **run_labels(inherited)}}


def remove_labelled(client: docker.DockerClient, run_id: str, image: str | None = None,
                    platform: str | None = None) -> list[str]:
    """Remove (forcibly) every container of run ``run_id`` (of ``image`` and ``platform`` only, when given)."""
    wanted = [f"{RUN_LABEL}={run_id}"] + ([f"{IMAGE_LABEL}={image}"] if image else []) + (
        [f"{PLATFORM_LABEL}={platform}"] if platform else [])
    try:  # the low-level listing: the high-level one inspects each, and fails when one ends in between
        found = [str(listed["Id"]) for listed in client.api.containers(all=True, filters={"label": wanted})]
    except ENGINE_FAILURES as exc:
        LOGGER.warning("could not list the containers of run %s: %s", run_id, exc)
        return []
    for container_id in found:
        try:
            client.api.remove_container(container_id, force=True)
        except ENGINE_FAILURES as exc:
            if not isinstance(exc, docker.errors.NotFound):
                LOGGER.warning("could not remove container %s: %s", container_id[:12], exc)
    return [container_id[:12] for container_id in found]


def timeout_s(default: float, settings: EngineSettings | None = None) -> float:
    """The time a container may run: ``default``, or STACK_CONTAINER_TIMEOUT_S when set (a ceiling for all).
    ``settings``: the task's (default: the environment as it is now)."""
    ceiling = (EngineSettings.from_env() if settings is None else settings).container_timeout_s
    return default if ceiling is None else min(default, ceiling)


@dataclass(frozen=True)
class Finished:
    exit_code: int
    output: str  # stdout and stderr together
    files: Mapping[str, bytes] = field(default_factory=dict)  # path in the container -> content


@contextmanager
def created(client: docker.DockerClient, image: str, command: Sequence[str] | str | None = None,
            **options: Any) -> Iterator[Container]:
    """A created (not started) container of ``image``, removed with everything in it on exit."""
    try:
        container = client.containers.create(image, command, **_labelled(options))
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"container of {image} could not be created: {_explain(exc)}") from None
    try:
        yield container
    finally:
        remove(container)


def remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except ENGINE_FAILURES as exc:
        if not isinstance(exc, docker.errors.NotFound):
            LOGGER.warning("could not remove container %s: %s", container.short_id, exc)


def wait(container: Container, *, timeout: float, what: str) -> int:
    """Wait for the container to exit and return its exit code; kill it and fail after ``timeout`` seconds."""
    try:
        status = container.wait(timeout=timeout)
    except ENGINE_FAILURES as exc:
        try:
            container.reload()
            running = container.status == "running"
        except ENGINE_FAILURES:
            running = False
        if running:
            try:
                container.kill()
            except ENGINE_FAILURES:
                pass
            raise StepFailed(f"{what} timed out after {timeout:.0f} s (stopped and removed)") from None
        raise StepFailed(f"{what}: the engine failed while waiting: {type(exc).__name__}: {exc}") from None
    return int(status.get("StatusCode", -1))


def run(client: docker.DockerClient, image: str, command: Sequence[str] | str, *, timeout: float, what: str,
        files_in: Mapping[str, bytes] | None = None, files_out: Sequence[str] = (), **options: Any) -> Finished:
    """Run ``command`` in a fresh container to completion (or the timeout); return exit code, output, files.

    ``files_in`` are written before the start (their folders made world-writable, so any image user can
    write next to them); ``files_out`` are read after the exit, when the container wrote them.
    """
    with created(client, image, command, **options) as container:
        try:
            if files_in:
                container.put_archive("/", _tar(files_in))
            container.start()
        except ENGINE_FAILURES as exc:
            raise StepFailed(f"{what} could not start: {_explain(exc)}") from None
        code = wait(container, timeout=timeout, what=what)
        try:
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            files = {path: data for path in files_out if (data := _read_file(container, path)) is not None}
        except ENGINE_FAILURES as exc:
            raise StepFailed(f"{what}: could not read its results: {type(exc).__name__}: {exc}") from None
        return Finished(code, output, files)


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    folders: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            parts = path.strip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777
                    tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


MAX_FILE_BYTES = 64 * 1024 * 1024  # a file read out of a container (a model's output) larger than this is refused


def _read_file(container: Container, path: str) -> bytes | None:
    """The regular file at ``path`` in the container, or None; a symlink or a file over MAX_FILE_BYTES is refused."""
    try:
        stream, stat = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    if int(stat.get("size") or 0) > MAX_FILE_BYTES:
        raise StepFailed(f"{path} in the container is {int(stat['size']):,} bytes, more than {MAX_FILE_BYTES:,}")
    if stat.get("linkTarget"):
        raise StepFailed(f"{path} in the container is a symlink (to {stat['linkTarget']}), not a file")
    buffer = io.BytesIO()
    for chunk in stream:
        buffer.write(chunk)
        if buffer.tell() > MAX_FILE_BYTES + 1024 * 1024:
            raise StepFailed(f"{path} in the container is more than {MAX_FILE_BYTES:,} bytes")
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        member = next(iter(tar.getmembers()), None)
        if member is None:
            return None
        if not member.isfile():
            raise StepFailed(f"{path} in the container is not a regular file")
        handle = tar.extractfile(member)
        return handle.read() if handle else None


NO_GPU_HINTS = ("could not select device driver", "nvidia-container-cli", "unknown or invalid runtime name: nvidia")


class GpuUnavailable(StackError):
    """The engine cannot give a container a GPU (no NVIDIA runtime there)."""


class TrackedContainers:
    """Starts containers of one image for image tests and always removes them (``remove_all``).

    With ``gpu`` every container requests all GPUs, as `--gpus all` does.
    """

    def __init__(self, client: docker.DockerClient, image: str, *, gpu: bool = False,
                 settings: EngineSettings | None = None) -> None:
        self.client = client
        self.image = image
        self.gpu = gpu
        # In an image's test process: the run, image and platform its parent passed, and the timeout ceiling.
        self.settings = EngineSettings.from_env() if settings is None else settings
        self.started: list[Container] = []

    def run(self, command: str | list[str], **kwargs: Any) -> tuple[int, str]:
        """Run ``command`` to completion (``timeout`` seconds, default 300); return (exit code, output)."""
        limit = timeout_s(float(kwargs.pop("timeout", 300)), self.settings)
        container = self.start(command, **kwargs)
        code = wait(container, timeout=limit, what=f"container of {self.image}")
        return code, container.logs(stdout=True, stderr=True).decode("utf-8", "replace")

    def start(self, command: str | list[str] | None = None, **kwargs: Any) -> Container:
        if self.gpu:
            kwargs.setdefault("device_requests", [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
        container = None
        try:
            container = self.client.containers.create(self.image, command, **_labelled(kwargs, self.settings))
            container.start()
        except ENGINE_FAILURES as exc:
            if container is not None:  # created, but it could not start (no GPU): it must not stay behind
                remove(container)
            if self.gpu and any(hint in str(exc) for hint in NO_GPU_HINTS):
                where = engine_address() or "the local engine"
                raise GpuUnavailable(
                    f"no GPU available: the Docker engine at {where} cannot give this container a GPU "
                    f"({_explain(exc)}). Run on a GPU host with the NVIDIA container runtime, "
                    "e.g. DOCKER_HOST=ssh://user@gpu-host") from None
            raise
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            remove(container)
