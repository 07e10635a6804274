"""What the benchmarks share: a temporary folder with a registry of its own, and the bundled stack copied
into its own git repository there, built with this repo's dodo.py (the tests' `stacks` helpers).

    with bundled_with_registry("bench-x-") as (tmp, stack):
        stack.doit("build", "--all")      # pushes to stack.registry, a registry only this run uses
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT / "tests", ROOT / "scripts"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from stacks import REPO, Stack, running_registry  # noqa: E402


def registry_binary() -> str:
    """The distribution registry's program, or exit saying how to install it."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed: bash setup.sh env")
    return binary


@contextmanager
def workspace(prefix: str) -> Iterator[tuple[Path, str]]:
    """A temporary folder and a registry of its own (storage in ``<folder>/registry``): (folder, host:port)."""
    binary = registry_binary()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, \
            running_registry(binary, Path(tmp) / "registry") as registry:
        yield Path(tmp), registry


def bundled_stack(folder: Path, registry: str | None, *, fresh: bool = False) -> Stack:
    """The bundled stack (images/ and spec.yml) in ``folder``, committed in a git repository of its own.

    ``fresh`` adds a label of this run's own to the root image, so that every image's input key and
    digest are new, whatever this engine built before (nothing is reused from an earlier run).
    """
    stack = Stack(folder, registry)
    shutil.copytree(REPO / "images", folder / "images")
    shutil.copy(REPO / "spec.yml", folder / "spec.yml")
    stack.write(".gitignore", "artifacts/\n.doit.json*\nwiki/\n")
    if fresh:
        dockerfile = folder / "images" / "base-notebook" / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + f"LABEL bench.run={uuid.uuid4().hex}\n")
    stack.commit("bundled stack")
    return stack


@contextmanager
def bundled_with_registry(prefix: str, *, fresh: bool = False) -> Iterator[tuple[Path, Stack]]:
    """A workspace (see ``workspace``) with the bundled stack in ``<folder>/bundled``, pushing to its registry."""
    with workspace(prefix) as (folder, registry):
        yield folder, bundled_stack(folder / "bundled", registry, fresh=fresh)
