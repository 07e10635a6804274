"""One job of a run over several engines: `stack-builder build --image I --platform P` in a process of its own,
pointed at one engine (DOCKER_HOST and its TLS files, for the docker SDK and the BuildKit client alike), with
records of its own (as a CI job has its own checkout), its output in a log file."""
from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from stack_builder import signals
from stack_builder.engine.endpoints import ENGINE_ENV, Endpoint
from stack_builder.defaults import REGISTRY_VAR
from stack_builder.settings import ARTIFACTS_VAR, ENGINE_NAME_VAR, WIKI_VAR

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    image: str
    platform: str

    @property
    def folder_name(self) -> str:
        return f"{self.image}--{self.platform.replace('/', '-')}"


def command() -> list[str]:
    """This stack-builder, run again: the same interpreter, without the working folder on its path."""
    return [sys.executable, "-P", "-m", "stack_builder.apps.cli"]


def run(job: Job, endpoint: Endpoint, *, stack: Path, folder: Path, registry: str, environment: Mapping[str, str],
        extra: Sequence[str]) -> int:
    """Run ``job`` on ``endpoint``; its exit status. Its records and log are under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in environment.items() if k not in ENGINE_ENV}
    env.update(endpoint.env())
    env.update({ENGINE_NAME_VAR: endpoint.name, ARTIFACTS_VAR: str(folder / "artifacts"),
                WIKI_VAR: str(folder / "wiki"), REGISTRY_VAR: registry})
    args = [*command(), "build", f"--image={job.image}", f"--platform={job.platform}", "--workers=1", *extra]
    LOGGER.info("%s on %s: started (log: %s)", job.image, job.platform, folder / "build.log")
    with open(folder / "build.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, cwd=stack, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        with signals.child(proc):
            return proc.wait()
