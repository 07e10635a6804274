"""What a Dockerfile says about its bases, read without building it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping


def base_images(dockerfile: Path) -> list[str]:
    """Images a Dockerfile builds FROM, with ARG defaults applied; ones that need a build arg are left out."""
    args: dict[str, str] = {}
    found: list[str] = []
    stages: set[str] = set()
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        arg = re.match(r"(?i)^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", line)
        if arg and arg.group(2) is not None:
            args[arg.group(1)] = arg.group(2).strip().strip('"\'')
        source = re.match(r"(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if not source:
            continue
        name = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), "\0"), source.group(1))
        if source.group(2):
            stages.add(source.group(2).lower())
        if "\0" not in name and name != "scratch" and name.lower() not in stages:
            found.append(name)
    return found


def base_arg_default(dockerfile: Path) -> str | None:
    """The default of ``ARG BASE_IMAGE=...`` when the first FROM uses it, else None."""
    default = None
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        arg = re.match(r"(?i)^ARG\s+BASE_IMAGE=(\S+)$", line)
        if arg:
            default = arg.group(1).strip('"\'')
        if re.match(r"(?i)^FROM\s", line):
            return default if re.search(r"\$\{?BASE_IMAGE\}?", line) else None
    return None


def final_base(dockerfile: Path, build_args: Mapping[str, str] | None = None) -> str | None:
    """The image the Dockerfile's last stage builds FROM, following stage names back to an image.

    Only the ARGs declared before the first FROM apply to FROM lines, as in Docker; ``build_args``
    override their defaults, as a build's do. None for ``scratch`` and for a FROM that needs a build
    arg nobody gives.
    """
    given = dict(build_args or {})
    args: dict[str, str] = {}
    stages: dict[str, str | None] = {}  # stage name (lower case) -> the image it starts from
    last: str | None = None
    seen_from = False
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        arg = re.match(r"(?i)^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", line)
        if arg and not seen_from:
            default = arg.group(2).strip().strip('"\'') if arg.group(2) is not None else None
            value = given.get(arg.group(1), default)
            if value is not None:
                args[arg.group(1)] = value
            continue
        source = re.match(r"(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if not source:
            continue
        seen_from = True
        name = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), "\0"), source.group(1))
        image = stages[name.lower()] if name.lower() in stages else name
        last = None if image is None or "\0" in image or image == "scratch" else image
        if source.group(2):
            stages[source.group(2).lower()] = last
    return last
