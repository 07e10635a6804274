"""Every image a Dockerfile names by itself, pinned to a digest: the same digest goes into the input key and
into the build, so a tag that moves upstream is built on anew, never "reused" as the old content.

A ``FROM`` of a stage or a tool image, and the ``# syntax=`` frontend, are resolved in their registry (for
the platform being built). An image only the engine holds (a seeded base) counts by its image ID, as BuildKit
finds it by name. A name that cannot be resolved counts as unique to this run: the image is built, never
reused on a guess. The parent (``FROM ${BASE_IMAGE}``) is pinned by the plan already.
"""
from __future__ import annotations

import logging
import re
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from stack_builder.engine import images
from stack_builder.errors import RegistryError
from stack_builder.pipeline.context import BuildContext
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.spec.dockerfile import base_images

LOGGER = logging.getLogger(__name__)

SYNTAX_RE = re.compile(r"^#\s*syntax\s*=\s*(\S+)\s*$", re.I)
FROM_RE = re.compile(r"^(\s*FROM\s+(?:--platform=\S+\s+)?)(\S+)(.*)$", re.I)
DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class Pinned:
    """One Dockerfile's images: name -> what counts in the key; and its text with each resolved name pinned."""

    sources: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None  # the Dockerfile to build (None: build the file as it is)


def split_name(name: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) of an image name, Docker Hub's defaults filled in."""
    first, _, rest = name.partition("/")
    host, path = (first, rest) if rest and ("." in first or ":" in first or first == "localhost") else ("", name)
    path, at, digest = path.partition("@")
    repository, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    reference = digest if at else tag
    if not host:
        host = DOCKER_HUB
        repository = repository if "/" in repository else f"library/{repository}"
    return host, repository, reference


def pin(ctx: BuildContext, dockerfile: Path, platform: str, root_base: tuple[str, str] | None = None) -> Pinned:
    """The Dockerfile's images for ``platform``. ``root_base``: (name, digest) of a root's upstream base as this
    build uses it (found per platform by ``bases``)."""
    text = dockerfile.read_text(encoding="utf-8")
    names = list(dict.fromkeys(base_images(dockerfile)))
    syntax = next((m.group(1) for m in (SYNTAX_RE.match(line) for line in text.splitlines()[:1]) if m), None)
    sources: dict[str, str] = {}
    pinned: dict[str, str] = {}
    for name in [*names, *([syntax] if syntax else [])]:
        if root_base is not None and root_base[0] == name:
            sources[name] = f"{name}@{root_base[1]}"
            continue
        found = images.find(ctx.engine, name) if "@" not in name else None
        explicit = split_name(name)[0] != DOCKER_HUB or name.startswith(("docker.io/", DOCKER_HUB))
        if found is not None and found.platform == platform and not explicit:
            sources[name] = found.id  # a seeded base only the engine holds: BuildKit takes it by name
            continue
        digest = _resolve(ctx, name, platform if name != syntax else None)
        if digest is None:
            sources[name] = f"unresolved {name} {secrets.token_hex(8)}"  # never matches: built, never reused
            LOGGER.warning("%s cannot be resolved to a digest: the image is built, not reused", name)
            continue
        sources[name] = f"{name}@{digest}"
        pinned[name] = f"{name.partition('@')[0]}@{digest}"
    return Pinned(sources, _rewritten(text, pinned) if pinned else None)


def _resolve(ctx: BuildContext, name: str, platform: str | None) -> str | None:
    host, repository, reference = split_name(name)
    try:
        client = ctx.registry if host == ctx.registry_host else RegistryClient(host, settings=ctx.settings.registry)
        if platform is None:
            return client.manifest_digest(repository, reference)
        return multiarch.platform_digest(client, repository, reference, platform)
    except (RegistryError, OSError) as exc:
        LOGGER.debug("cannot resolve %s: %s", name, exc)
        return None


def _rewritten(text: str, pinned: Mapping[str, str]) -> str:
    lines = text.splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines):
        syntax = SYNTAX_RE.match(line.rstrip("\n")) if number == 0 else None
        if syntax and syntax.group(1) in pinned:
            out.append(f"# syntax={pinned[syntax.group(1)]}\n")
            continue
        source = FROM_RE.match(line.rstrip("\n"))
        if source and source.group(2) in pinned:
            out.append(f"{source.group(1)}{pinned[source.group(2)]}{source.group(3)}\n")
            continue
        out.append(line)
    return "".join(out)


@contextmanager
def dockerfile_to_build(recipe: Path, pinned: Pinned) -> Iterator[Path]:
    """The Dockerfile the build reads: ``recipe`` itself, or its pinned text in a private folder (with the
    recipe's own ``<name>.dockerignore`` beside it, which BuildKit reads from there)."""
    if pinned.text is None:
        yield recipe
        return
    with tempfile.TemporaryDirectory(prefix="stack-pinned-") as folder:
        path = Path(folder) / recipe.name
        path.write_text(pinned.text, encoding="utf-8")
        own_ignore = recipe.with_name(recipe.name + ".dockerignore")
        if own_ignore.is_file():
            shutil.copyfile(own_ignore, path.with_name(path.name + ".dockerignore"))
        yield path
