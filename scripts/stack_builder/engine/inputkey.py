"""The input key of a build: one hash of everything that determines the image it produces.

It covers the Dockerfile, every file the engine receives as the build context (``.dockerignore`` matched
as BuildKit matches it, case and all: ``dockerignore.py``), each file's whole permission mode, the build
args, the ids of the build secrets (never their values), the target platform, the parent's digest, every
file pytest loads for the image's tests (its test folders and every ``conftest.py`` between them and the
stack's top), and a model's examples and reference outputs whatever ``.dockerignore`` says. Labels that
vary per commit (revision, created) are not inputs; neither are ``__pycache__`` folders that running
tests leaves. Two builds with the same key produce the same image, so the second is not needed.

A symbolic link counts by its text (BuildKit copies links as they are) and by what it resolves to (pytest
and a COPY of the folder read through it); a link that resolves outside the stack is refused, since
nothing outside the stack is reviewed with it. File contents are hashed once per folder and run.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from stack_builder.engine import dockerignore
from stack_builder.errors import StepFailed

LABEL = "io.stack-builder.input-key"
VERSION = 2  # bump when what the key covers changes, so old keys stop matching (2: BuildKit's .dockerignore,
# whole modes, links resolved, conftest files, model examples)
BYPRODUCTS = frozenset({"__pycache__", ".pytest_cache"})  # written by running the tests, not sources


def dockerignore_patterns(context: Path, dockerfile: Path) -> tuple[str, list[str]]:
    """(file, patterns) of the context: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins, as in BuildKit."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return str(candidate), dockerignore.read_patterns(candidate)
    return "", []


@lru_cache(maxsize=None)
def folder_digest(folder: Path, patterns: tuple[str, ...] = (), root: Path | None = None, source: str = "") -> str:
    """A hash of the files under ``folder`` that ``patterns`` do not exclude: paths, modes, contents, and for a
    link its text and what it resolves to. ``root``: the stack, which no link may leave."""
    if not folder.is_dir():
        return "absent"
    compiled = dockerignore.compile_patterns(patterns, source=source) if patterns else []
    digest = hashlib.sha256()
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if (Path(top) / d).is_symlink()]):
            path = Path(top) / name
            relative = path.relative_to(folder).as_posix()
            if BYPRODUCTS.intersection(Path(relative).parts) or (compiled and dockerignore.excluded(relative, compiled)):
                continue
            digest.update(_entry(path, relative, root or folder).encode("utf-8", "surrogateescape") + b"\0")
        dirs[:] = [d for d in dirs if d not in BYPRODUCTS and not (Path(top) / d).is_symlink()]
    return digest.hexdigest()


def _entry(path: Path, relative: str, root: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        target = path.resolve()
        if not target.is_relative_to(root.resolve()):
            raise StepFailed(f"{path} is a link to {target}, outside the stack ({root}): the builder cannot tell "
                             "when what it points at changes; copy the file into the stack instead")
        if target.is_dir() and path.parent.resolve().is_relative_to(target):
            return f"L {relative} {os.readlink(path)} loop"  # a link to a folder above it: its files count there
        return f"L {relative} {os.readlink(path)} {_resolved(target, root)}"
    if stat.S_ISREG(info.st_mode):
        return f"F {relative} {stat.S_IMODE(info.st_mode):o} {_file_sha256(path)}"
    return f"O {relative} {stat.S_IFMT(info.st_mode):o}"  # a socket or a device: its kind counts


_walking = threading.local()  # the folders a link is being followed into, on this thread: a loop stops there


def _resolved(target: Path, root: Path) -> str:
    if target.is_dir():
        walking: set[Path] = getattr(_walking, "folders", set())
        if target in walking:
            return "loop"
        _walking.folders = walking | {target}
        try:
            return "D " + folder_digest(target, (), root)
        finally:
            _walking.folders = walking
    if target.is_file():
        return "F " + _file_sha256(target)
    return "missing"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def context_digest(context: Path, dockerfile: Path, root: Path | None = None) -> str:
    """The build context as the engine receives it, ``.dockerignore`` honoured as BuildKit honours it."""
    source, patterns = dockerignore_patterns(context, dockerfile)
    return folder_digest(context.resolve(), tuple(patterns), root.resolve() if root else None, source)


def files_digest(files: Iterable[Path], root: Path | None = None) -> list[str]:
    """Single files that count wherever they are (the ``conftest.py`` files pytest loads above the tests)."""
    found = []
    for path in files:
        top = root or path.parent
        name = path.relative_to(top).as_posix() if path.is_relative_to(top) else path.name
        target = path.resolve()
        if not target.is_relative_to(top.resolve()):
            raise StepFailed(f"{path} resolves to {target}, outside the stack ({top}): copy it into the stack")
        found.append(f"{name} {_resolved(target, top)}")
    return found


def input_key(*, context: Path, dockerfile: Path, build_args: Mapping[str, str], secret_ids: Iterable[str],
              platform: str, parent: str, tests: Iterable[Path] = (), checks: object = None,
              recipes: Iterable[Path] = (), root: Path | None = None, test_files: Iterable[Path] = (),
              model_files: Iterable[Path] = ()) -> str:
    """``sha256:<hex>`` over everything that determines the image; ``parent`` is its digest (or image ID).
    ``recipes``: every Dockerfile of a recipe chain (which one passes decides the image), when there are several.
    ``root``: the stack's folder; ``test_files``: the conftest files pytest loads above the test folders;
    ``model_files``: a model's examples and references."""
    top = root.resolve() if root else None
    inputs = {
        "version": VERSION,
        "dockerfile": _file_sha256(dockerfile),
        "context": context_digest(context, dockerfile, top),
        "build_args": sorted(build_args.items()),
        "secret_ids": sorted(set(secret_ids)),
        "platform": platform,
        "parent": parent,
        "tests": [folder_digest(folder.resolve(), (), top) for folder in tests],
        "test_files": files_digest(test_files, top),
        "model_files": [folder_digest(folder.resolve(), (), top) if folder.is_dir() else files_digest([folder], top)
                        for folder in model_files],
        "checks": checks,  # how the image is checked (a model's settings): other checks, another verdict
    }
    chain = [(_file_sha256(r), context_digest(context, r, top)) for r in recipes]
    if chain:  # (absent for one Dockerfile)
        inputs["recipes"] = chain
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
