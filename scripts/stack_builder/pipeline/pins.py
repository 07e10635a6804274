"""Every image a Dockerfile names by itself, pinned to a digest: the same digest goes into the input key and
into the build, so a tag that moves upstream is built on anew, never "reused" as the old content.

A ``FROM`` of a stage or a tool image, and the ``# syntax=`` frontend, are resolved in their registry (for
the platform being built). An image only the engine holds (a seeded base) counts by its image ID, as BuildKit
finds it by name. An official name the engine holds a local stand-in for (``engine.local_bases``) is built
from the stand-in, which the Dockerfile copy names, and counts by its local name and image ID. A name that
cannot be resolved counts as unique to this run: the image is built, never reused on a guess. The parent
(``FROM ${BASE_IMAGE}``) is pinned by the plan already.
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

from stack_builder.engine import images, local_bases
from stack_builder.errors import RegistryError
from stack_builder.pipeline.context import BuildContext
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient

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


def pin(ctx: BuildContext, dockerfile: Path, platform: str, root_base: tuple[str, str] | None = None,
        build_args: Mapping[str, str] | None = None) -> Pinned:
    """The Dockerfile's images for ``platform``, its ARGs given ``build_args`` as the build gives them.
    ``root_base``: (name, digest) of a root's upstream base as this build uses it (found per platform)."""
    text = dockerfile.read_text(encoding="utf-8")
    sources: dict[str, str] = {}
    lines: dict[int, tuple[str, str]] = {}  # line number -> (name as built, its pinned reference)
    counted: dict[tuple[str, bool], tuple[str, str | None]] = {}  # each name resolved once per Dockerfile
    for number, name in _named(text, build_args or {}):
        frontend = number < 0
        if (name, frontend) not in counted:
            counted[(name, frontend)] = _count(ctx, name, None if frontend else platform, root_base)
        sources[name], pinned = counted[(name, frontend)]
        if pinned is not None:
            lines[number] = (name, pinned)
    return Pinned(sources, _rewritten(text, lines) if lines else None)


def _named(text: str, build_args: Mapping[str, str]) -> list[tuple[int, str]]:
    """(line number, image name) of the frontend (number -1) and each FROM that names an image, with ARGs
    substituted as the build substitutes them. The parent's ``${BASE_IMAGE}`` is left to the plan."""
    found: list[tuple[int, str]] = []
    args: dict[str, str] = {}
    stages: set[str] = set()
    seen_from = False
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        directive = SYNTAX_RE.match(line) if not seen_from else None
        if directive and _only_directives(text, number):
            found.append((-1 - number, directive.group(1)))
            continue
        arg = re.match(r"(?i)^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", line)
        if arg and not seen_from:
            default = arg.group(2).strip().strip('"\'') if arg.group(2) is not None else None
            value = build_args.get(arg.group(1), default)
            if value is not None:
                args[arg.group(1)] = value
            continue
        source = FROM_RE.match(raw)
        if not source:
            continue
        seen_from = True
        token, alias = source.group(2), re.match(r"(?i)^\s+AS\s+(\S+)", source.group(3))
        if alias:
            stages.add(alias.group(1).lower())
        if re.search(r"\$\{?BASE_(?:IMAGE|TAG)\b", token):
            continue  # the parent (datahub's Dockerfiles say <image>:${BASE_TAG}), pinned by the plan
        name = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), "\0"), token)
        if "\0" in name or name == "scratch" or name.lower() in stages - ({alias.group(1).lower()} if alias else set()):
            continue
        found.append((number, name))
    return found


def _only_directives(text: str, number: int) -> bool:
    """Whether every line before ``number`` is a parser directive (``# key=value``), as BuildKit requires."""
    return all(re.match(r"^#\s*[A-Za-z]+\s*=", line.strip()) for line in text.splitlines()[:number])


def _count(ctx: BuildContext, name: str, platform: str | None,
           root_base: tuple[str, str] | None) -> tuple[str, str | None]:
    """(what counts in the key, the pinned reference to build with, or None to build with the name)."""
    stand_in = local_bases.find(ctx.engine, name, platform) if platform is not None else None
    if stand_in is not None:
        return f"{stand_in.name}@{stand_in.id}", stand_in.name  # this machine's own copy, built by its name
    if root_base is not None and root_base[0] == name:
        return f"{name}@{root_base[1]}", None
    found = images.find(ctx.engine, name) if "@" not in name and platform is not None else None
    explicit = split_name(name)[0] != DOCKER_HUB or name.startswith(("docker.io/", DOCKER_HUB))
    if found is not None and found.platform == platform and not explicit:
        return found.id, None  # a seeded base only the engine holds: BuildKit takes it by name
    digest = _resolve(ctx, name, platform)
    if digest is None:
        LOGGER.warning("%s cannot be resolved to a digest: the image is built, not reused", name)
        return f"unresolved {name} {secrets.token_hex(8)}", None  # never matches: built, never reused
    return f"{name}@{digest}", f"{name.partition('@')[0]}@{digest}"


def _resolve(ctx: BuildContext, name: str, platform: str | None) -> str | None:
    host, repository, reference = split_name(name)
    try:
        # Another registry is asked once, without retries: one that cannot answer makes the key unique (a build),
        # which costs less than waiting on it; no credential of the stack's own registry goes there.
        client = ctx.registry if host == ctx.registry_host else \
            RegistryClient(host, settings=ctx.settings.registry, retries=0)
        if platform is None:
            return client.manifest_digest(repository, reference)
        return multiarch.platform_digest(client, repository, reference, platform)
    except (RegistryError, OSError) as exc:
        LOGGER.debug("cannot resolve %s: %s", name, exc)
        return None


def _rewritten(text: str, lines: Mapping[int, tuple[str, str]]) -> str:
    """``text`` with each pinned line naming its digest: a FROM line (by number) its image, a directive line
    (number ``-1 - n``) its frontend. ARGs in a pinned FROM are replaced by the name they gave."""
    out = text.splitlines(keepends=True)
    for number, (_, pinned) in lines.items():
        if number < 0:
            out[-1 - number] = f"# syntax={pinned}\n"
            continue
        source = FROM_RE.match(out[number].rstrip("\n"))
        if source:
            out[number] = f"{source.group(1)}{pinned}{source.group(3)}\n"
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
