"""Build one image with BuildKit, through a docker CLI that speaks it, streaming its plain log.

The docker SDK cannot drive BuildKit, so builds go through the CLI, always as an argument list
(never a shell): ``docker buildx build`` where the buildx plugin is installed, else a docker
client older than 23.0 (Debian's docker.io) with DOCKER_BUILDKIT=1. A failed build raises
``StepFailed`` with the failing step's last lines; an engine that went away says so.
"""
from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Mapping

import docker

from stack_builder import signals
from stack_builder.engine.client import ENGINE_FAILURES
from stack_builder.errors import EngineError, Interrupted, StepFailed
from stack_builder.secrets import known, redact, without_secrets
from stack_builder.settings import environment as process_environment

LOGGER = logging.getLogger(__name__)

BUILD_TIMEOUT_S = 4 * 3600
LEGACY_CLI = Path("/usr/bin/docker")  # Debian's docker.io client: BuildKit built in, no plugin needed


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    dockerfile: Path
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    platform: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)  # secret id -> environment variable holding it
    cache_from: tuple[str, ...] = ()  # images whose inline build cache this build may reuse


@dataclass(frozen=True)
class BuildKitCli:
    """How to start a BuildKit build: the argument list up to the options, and extra environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    name: str


def _run_quietly(argv: list[str], *, any_exit: bool = False) -> str | None:
    """The command's output, or None when it fails (``any_exit``: whatever its exit status)."""
    try:
        done = subprocess.run([*argv], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 or any_exit else None


@functools.lru_cache(maxsize=4)
def find_cli(clients: tuple[str, ...] | None = None) -> BuildKitCli:
    """The first BuildKit-capable client among ``clients`` (default: docker on PATH, then /usr/bin/docker):
    one with the buildx plugin, else one older than 23.0."""
    found = clients if clients is not None else (shutil.which("docker"), str(LEGACY_CLI))
    candidates = list(dict.fromkeys(p for p in found if p and Path(p).exists()))
    for binary in candidates:
        if _run_quietly([binary, "buildx", "version"]):
            return BuildKitCli((binary, "buildx", "build", "--load"), {}, f"{binary} buildx")
    for binary in candidates:
        # The client's version prints even when the engine does not answer (then the exit status is 1).
        version = _run_quietly([binary, "version", "--format", "{{.Client.Version}}"], any_exit=True) or ""
        major = re.match(r"(\d+)\.", version)
        if major and int(major.group(1)) < 23:
            return BuildKitCli((binary, "build"), {"DOCKER_BUILDKIT": "1"}, f"{binary} {version} (DOCKER_BUILDKIT=1)")
    raise EngineError(
        "no docker client that can build with BuildKit: found " + (", ".join(candidates) or "no docker client") +
        ". Install the buildx plugin (Debian trixie's docker-buildx, into ~/.docker/cli-plugins/) or Debian's "
        "docker.io client (/usr/bin/docker); `bash setup.sh env` provides one")


STEP_RE = re.compile(r"^#\d+ \[(?:[\w.-]+ )?(\d+)/(\d+)\] (.+)$")  # BuildKit's plain "#7 [stage 2/4] RUN ..."


def build_image(client: docker.DockerClient, request: BuildRequest, log: IO[str],
                on_step: Callable[[str], None] | None = None, *, environment: Mapping[str, str] | None = None) -> str:
    """Build and return the image ID. Raises ``StepFailed`` with the failing step's output. ``on_step`` hears
    each Dockerfile step as it starts ("step 2/4: RUN ..."). ``environment``: the task's (``config.settings``),
    where the build secrets' values are and which the client runs in; default, the process's as it is now."""
    cli = find_cli()
    env = process_environment() if environment is None else environment
    missing = [f"{sid} (${var})" for sid, var in request.secrets.items() if not env.get(var)]
    if missing:
        raise StepFailed(f"build secrets without a value: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="stack-build-") as tmp:
        iidfile = Path(tmp) / "image-id"
        argv = [*cli.argv, "--progress=plain", "--iidfile", str(iidfile), "--file", str(request.dockerfile)]
        if request.platform:
            argv += ["--platform", request.platform]
        for key, value in {**request.build_args, "BUILDKIT_INLINE_CACHE": "1"}.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in request.labels.items():
            argv += ["--label", f"{key}={value}"]
        for ref in request.cache_from:
            argv += ["--cache-from", ref]
        for sid, var in request.secrets.items():
            argv += ["--secret", f"id={sid},env={var}"]  # the value stays in the environment, never in argv
        argv.append(str(request.context))
        log.write(f"$ {cli.name} build {request.context.name}" +
                  (f" --platform {request.platform}" if request.platform else "") + "\n")
        log.flush()
        secrets = [*(env[var] for var in request.secrets.values() if env.get(var)), *known()]
        # The client needs the build secrets' variables (it reads them itself), never the registry's or cosign's.
        code, tail = _stream(argv, {**without_secrets(env, keep_build_secrets=True), **cli.env}, log, secrets, on_step)
        if signals.stopping():
            raise Interrupted(f"the build was stopped ({signals.signal_name()})")
        if code != 0:
            raise StepFailed(_failure(client, tail))
        try:
            image_id = iidfile.read_text(encoding="utf-8").strip()
        except OSError:
            image_id = ""
    if not image_id:
        raise StepFailed("the build ended without an image ID")
    return image_id


def _stream(argv: list[str], env: Mapping[str, str], log: IO[str], secrets: list[str],
            on_step: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """Run the build, copying its output (build secrets redacted) into the log as it comes; return the exit
    code and the last lines. A build that runs past BUILD_TIMEOUT_S is killed."""
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen([*argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env=dict(env), text=True, errors="replace", start_new_session=True) as proc, \
            signals.child(proc):  # a stop request ends the client, and with it the build in the engine
        watchdog = threading.Timer(BUILD_TIMEOUT_S, proc.kill)
        watchdog.start()
        last_step = ""
        try:
            for line in proc.stdout or ():
                line = redact(line, secrets)  # a step that prints a secret must not put it in our files
                log.write(line)
                log.flush()  # a live log: someone may be following it, and a crash must not lose it
                if line.strip():
                    tail.append(line.rstrip("\n"))
                step = STEP_RE.match(line.rstrip("\n")) if on_step is not None else None
                if step and on_step is not None and step.group(1) != last_step:
                    last_step = step.group(1)
                    on_step(f"step {step.group(1)}/{step.group(2)}: {' '.join(step.group(3).split())[:60]}")
            code = proc.wait()
        finally:
            timed_out = not watchdog.is_alive() and proc.returncode is not None and proc.returncode < 0
            watchdog.cancel()
    if timed_out:
        return -1, [*tail, f"the build did not finish within {BUILD_TIMEOUT_S} s and was stopped"]
    return code, list(tail)


EXIT_RE = re.compile(r'(?:executor failed running \[(?P<a>.*)\]|process "(?P<b>.*)" did not complete successfully)'
                     r": exit code: (?P<code>\d+)")
STEP_OUTPUT_RE = re.compile(r"^#\d+ \d+\.\d+ (?P<text>.*)$")


def _failure(client: docker.DockerClient, tail: list[str]) -> str:
    """The reason a build failed: the command and its exit code, and its last output lines."""
    try:
        client.ping()
    except ENGINE_FAILURES:
        return f"the engine failed during the build: {tail[-1] if tail else 'no output'}"
    for line in reversed(tail):
        found = EXIT_RE.search(line)
        if found:
            command = " ".join((found.group("a") or found.group("b") or "").split())
            command = command.removeprefix("/bin/sh -c ")
            command = command if len(command) <= 80 else command[:77] + "..."
            output = [m.group("text") for t in tail if (m := STEP_OUTPUT_RE.match(t))][-3:]
            return f"build failed: `{command}` exited {found.group('code')}" + (
                f": {' | '.join(output)[:300]}" if output else "")
    errors = [t for t in tail if "error" in t.lower()]
    return "build failed: " + " | ".join((errors or tail)[-2:])[:400]
