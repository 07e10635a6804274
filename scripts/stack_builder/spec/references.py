"""Docker image references: the grammar, checked before any name or tag is used."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from stack_builder.errors import StackError

# From the distribution reference grammar (docker/distribution/reference).
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
HOST_RE = re.compile(rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_TAG = 128


@dataclass(frozen=True)
class Repository:
    """A repository: an optional registry host and a path, e.g. ghcr.io + org/image."""

    host: str | None
    path: str

    def on(self, registry: str) -> "Repository":
        """The same path on another registry host."""
        return Repository(registry, self.path)

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.host else self.path


def split_host(name: str) -> tuple[str | None, str]:
    """Split off the registry host the way Docker does: a first component with '.', ':' or 'localhost'."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


def parse_repository(name: str) -> Repository:
    """Parse an image_name; raise ``StackError`` naming the part that is not valid."""
    host, path = split_host(name)
    if host is not None and not HOST_RE.fullmatch(host):
        raise StackError(f"'{name}': registry host '{host}' is not a valid host[:port]")
    if not PATH_RE.fullmatch(path):
        raise StackError(
            f"'{name}' is not a valid repository name: use lowercase letters, digits and "
            "separators (. _ -) in path components joined by '/', without a tag"
        )
    if len(str(name)) > 255:
        raise StackError(f"'{name}' is longer than 255 characters")
    return Repository(host, path)


def check_registry(value: str) -> str:
    """Validate a --registry / STACK_REGISTRY value: HOST[:PORT], nothing else."""
    if not HOST_RE.fullmatch(value):
        raise StackError(f"registry '{value}' is not HOST[:PORT] (for example ghcr.io or 127.0.0.1:5000)")
    return value


def check_tag(tag: str) -> str:
    """Raise unless ``tag`` follows Docker's tag grammar."""
    if not TAG_RE.fullmatch(tag):
        raise StackError(
            f"tag '{tag}' is not a valid Docker tag: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
        )
    return tag


def sanitize_branch(branch: str, *, prefix: str) -> str:
    """``<prefix>-<branch>`` as a valid tag of at most 128 characters.

    Characters Docker does not allow become '-'. A name that must be cut keeps
    a short hash of the whole branch name so two long branches never collide.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).strip(".-") or "unknown"
    tag = f"{prefix}-{cleaned}"
    if len(tag) > MAX_TAG:
        suffix = "-" + hashlib.sha256(branch.encode()).hexdigest()[:8]
        tag = tag[: MAX_TAG - len(suffix)].rstrip(".-") + suffix
    return check_tag(tag)


def split_reference(name: str) -> tuple[str, str]:
    """``repository[:tag][@digest]`` as (repository, the digest, else the tag, else ``latest``)."""
    repository, _, digest = name.partition("@")
    last = repository.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        repository, _, tag = repository.rpartition(":")
    return repository, digest or tag or "latest"
