"""Build one image on the engine, streaming Docker's output to a log file.

An error anywhere in Docker's stream is a failure, never a silent success.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import docker

from stack_builder.engine.client import ENGINE_FAILURES
from stack_builder.errors import StepFailed

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    dockerfile: Path
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    platform: str | None = None


def build_image(client: docker.DockerClient, request: BuildRequest, log: IO[str]) -> str:
    """Build and return the image ID. Raises ``StepFailed`` with Docker's error."""
    try:
        dockerfile = request.dockerfile.relative_to(request.context).as_posix()
    except ValueError:
        dockerfile = str(request.dockerfile)  # the SDK adds a Dockerfile outside the context itself
    try:
        stream = client.api.build(path=str(request.context), dockerfile=dockerfile, buildargs=dict(request.build_args),
                           labels=dict(request.labels), rm=True, forcerm=True, pull=False, decode=True,
                           platform=request.platform)
        return _follow(stream, log)
    except docker.errors.APIError as exc:
        raise StepFailed(f"build refused by the engine: {exc.explanation or exc}") from None
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"engine failed during the build: {type(exc).__name__}: {exc}") from None


ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
COMMAND_RE = re.compile(r"The command '(.*)' returned a non-zero code: (\d+)", re.S)


def _short(message: str) -> str:
    """Docker's 'The command ... returned a non-zero code' with the command cut to a readable length."""
    message = ANSI_RE.sub("", message).strip()
    found = COMMAND_RE.search(message)
    if found:
        command = " ".join(found.group(1).split())
        command = command if len(command) <= 80 else command[:77] + "..."
        return f"`{command}` exited {found.group(2)}"
    return message


def _context(lines: list[str]) -> str:
    """The last lines that say 'error', else the last line: usually what went wrong."""
    errors = [line for line in lines if "error" in line.lower()]
    chosen = errors[-2:] or lines[-1:]
    text = " | ".join(chosen)
    return f": {text[:300]}" if text else ""


def _follow(stream: Iterable[Mapping[str, Any]], log: IO[str]) -> str:
    image_id: str | None = None
    last_lines: list[str] = []
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            message = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message") or "unknown error"
            log.write(f"ERROR: {message}\n")
            log.flush()
            raise StepFailed(f"build failed: {_short(message)}" + _context(last_lines))
        text = chunk.get("stream") or chunk.get("status")
        if text:
            log.write(text if text.endswith("\n") else text + "\n")
            log.flush()  # a live log: someone may be following it, and a crash must not lose it
            lines = [ANSI_RE.sub("", t).strip() for t in text.splitlines()]
            last_lines = (last_lines + [t for t in lines if t and not t.startswith("Removing intermediate")])[-8:]
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
    log.flush()
    if image_id is None:
        raise StepFailed("build ended without an image ID in Docker's stream")
    return image_id
