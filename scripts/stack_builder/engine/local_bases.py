"""Base images this machine made for itself live under a local name, never under an official one.

A Debian base seeded where the network intercepts TLS carries the host's certificate authority, so it is
not the image ``debian:bookworm-slim`` names anywhere else. The set-up keeps it as
``localhost/host-ca/debian:bookworm-slim`` (``localhost/`` is a registry no engine pulls from or pushes
to by that name). A stack's Dockerfiles still say ``FROM debian:bookworm-slim``: where the engine holds
the local image of the platform being built, the build uses it (its Dockerfile copy names it), and the
image's labels and input key record it by its local name and image ID.
"""
from __future__ import annotations

from dataclasses import dataclass

import docker

from stack_builder.engine import images

NAMESPACE = "localhost/host-ca/"
DOCKER_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


@dataclass(frozen=True)
class LocalBase:
    """A local stand-in for an official base: its local name and the engine's image ID."""

    name: str
    id: str


def official(name: str) -> str | None:
    """The Docker Hub repository and tag ``name`` names (``debian:bookworm-slim``), or None for a name in
    another registry, one pinned by digest, or one with an unexpanded ARG."""
    if "@" in name or "$" in name or not name:
        return None
    for prefix in DOCKER_HUB_PREFIXES:
        if name.startswith(prefix):
            name = name.removeprefix(prefix)
            break
    else:
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return None  # a registry of its own
    name = name.removeprefix("library/")
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def local_name(name: str) -> str | None:
    """The local name an official base ``name`` is kept under on this machine (None: not an official name)."""
    found = official(name)
    return NAMESPACE + found if found is not None else None


def find(client: docker.DockerClient | None, name: str, platform: str | None) -> LocalBase | None:
    """The engine's local stand-in for ``name`` of ``platform``, or None (no engine asked, not an official
    name, no such local image, or one of another platform)."""
    local = local_name(name)
    if client is None or local is None:
        return None
    found = images.find(client, local)
    if found is None or (platform is not None and found.platform != platform):
        return None
    return LocalBase(local, found.id)
