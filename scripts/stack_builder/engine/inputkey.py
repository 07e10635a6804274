"""The input key of a build: one hash of everything that determines the image it produces.

It covers the Dockerfile, every file the engine would receive as the build context (what
``.dockerignore`` leaves out does not count), the build args, the ids of the build secrets (never
their values), the target platform, the parent's digest, and the tests the image must pass (so a
changed test is run again rather than trusted). Labels that vary per commit (revision, created)
are not inputs; neither are ``__pycache__`` folders that running tests leaves. Two builds with the same key produce the same image, so the second is not needed.

File contents are hashed once per folder and run; only the executable bit of a file's mode counts,
as in git, so a fresh clone under another umask has the same key.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from docker.utils.build import exclude_paths

LABEL = "io.stack-builder.input-key"
VERSION = 1  # bump when what the key covers changes, so old keys stop matching
BYPRODUCTS = frozenset({"__pycache__", ".pytest_cache"})  # written by running the tests, not sources


def dockerignore_patterns(context: Path, dockerfile: Path) -> list[str]:
    """The context's ignore patterns: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins, as in BuildKit."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return []


@lru_cache(maxsize=None)
def folder_digest(folder: Path, patterns: tuple[str, ...] = (), dockerfile: str | None = None) -> str:
    """A hash of the files under ``folder`` that ``patterns`` do not exclude: paths, executable bits, contents."""
    if not folder.is_dir():
        return "absent"
    included = exclude_paths(str(folder), list(patterns), dockerfile=dockerfile) if patterns else \
        {os.path.relpath(os.path.join(top, name), folder) for top, dirs, files in os.walk(folder)
         for name in [*files, *dirs]}
    digest = hashlib.sha256()
    for relative in sorted(included):
        if BYPRODUCTS.intersection(Path(relative).parts):
            continue
        path = folder / relative
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            entry = f"L {relative} {os.readlink(path)}"
        elif stat.S_ISREG(info.st_mode):
            executable = "x" if info.st_mode & stat.S_IXUSR else "-"
            entry = f"F {relative} {executable} {_file_sha256(path)}"
        else:
            continue  # folders count through the files in them
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def context_digest(context: Path, dockerfile: Path) -> str:
    """The build context as the engine receives it, ``.dockerignore`` honoured."""
    relative = os.path.relpath(dockerfile, context) if dockerfile.is_relative_to(context) else None
    return folder_digest(context.resolve(), tuple(dockerignore_patterns(context, dockerfile)), relative)


def input_key(*, context: Path, dockerfile: Path, build_args: Mapping[str, str], secret_ids: Iterable[str],
              platform: str, parent: str, tests: Iterable[Path] = (), checks: object = None,
              recipes: Iterable[Path] = ()) -> str:
    """``sha256:<hex>`` over everything that determines the image; ``parent`` is its digest (or image ID).
    ``recipes``: every Dockerfile of a recipe chain (which one passes decides the image), when there are several."""
    inputs = {
        "version": VERSION,
        "dockerfile": _file_sha256(dockerfile),
        "context": context_digest(context, dockerfile),
        "build_args": sorted(build_args.items()),
        "secret_ids": sorted(set(secret_ids)),
        "platform": platform,
        "parent": parent,
        "tests": [folder_digest(folder.resolve()) for folder in tests],
        "checks": checks,  # how the image is checked (a model's settings): other checks, another verdict
    }
    chain = [(_file_sha256(r), context_digest(context, r)) for r in recipes]
    if chain:  # (absent for one Dockerfile: keys made before recipes existed stay the same)
        inputs["recipes"] = chain
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
