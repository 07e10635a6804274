"""One frozen configuration per task: which stack, which registry, where records go."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stack_builder.spec.references import check_registry

REGISTRY_VAR = "STACK_REGISTRY"
DEFAULT_REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True, kw_only=True)
class Config:
    stack_dir: Path
    registry: str  # HOST[:PORT] that replaces the host of every image_name

    @property
    def artifacts(self) -> Path:
        return self.stack_dir / "artifacts"

    @property
    def wiki_dir(self) -> Path:
        return self.stack_dir / "wiki"


def make_config(*, registry: str = "", stack_dir: Path | None = None, uses_registry: bool = True) -> Config:
    """The stack in the current folder (``-d`` chooses it), and the registry: ``--registry``, else
    $STACK_REGISTRY, else the local one. A malformed registry stops here, before any request; a task
    that never talks to a registry (``uses_registry=False``) does not read it at all."""
    host = check_registry(registry or os.environ.get(REGISTRY_VAR) or DEFAULT_REGISTRY) if uses_registry else ""
    return Config(stack_dir=(stack_dir or Path.cwd()).resolve(), registry=host)
