"""Docker image references: the grammar, checked before any name or tag is used."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from stack_builder import secrets
from stack_builder.errors import StackError, shown

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
        raise StackError(f"'{shown(name)}': registry host '{shown(host)}' is not a valid host[:port]")
    if not PATH_RE.fullmatch(path):
        raise StackError(
            f"'{shown(name)}' is not a valid repository name: use lowercase letters, digits and "
            "separators (. _ -) in path components joined by '/', without a tag"
        )
    if len(str(name)) > 255:
        raise StackError(f"'{shown(name)}' is longer than 255 characters")
    return Repository(host, path)


def check_registry(value: str) -> str:
    """Validate a --registry / STACK_REGISTRY value: HOST[:PORT] with a port from 1 to 65535, nothing else."""
    if not HOST_RE.fullmatch(value):
        raise StackError(f"registry '{shown(value)}' is not HOST[:PORT] (for example ghcr.io or 127.0.0.1:5000)")
    port = value.rpartition(":")[2] if not value.endswith("]") and ":" in value.rpartition("]")[2] else ""
    if port and not 1 <= int(port) <= 65535:
        raise StackError(f"registry '{shown(value)}': port {port} is not from 1 to 65535")
    return value


def check_tag(tag: str) -> str:
    """Raise unless ``tag`` follows Docker's tag grammar."""
    if not TAG_RE.fullmatch(tag):
        raise StackError(
            f"tag '{shown(tag)}' is not a valid Docker tag: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
        )
    secrets.keep(tag)  # a checked value: never redacted
    return tag


# Tags only the tool makes: a branch whose tag would look like one of these gets a hashed tag instead.
PLATFORM_SUFFIX_RE = re.compile(r"-(?:linux|windows|darwin|freebsd)-[a-z0-9_]+(?:-v[0-9]+)?$")
RESERVED_BRANCH_RE = re.compile(r"(?i)(?:.*stable|git-[0-9a-f]{12}|.*-(?:rollback|yanked))$")


def reserved(branch_part: str) -> str | None:
    """Why ``<prefix>-<branch_part>`` would be a tag only the tool may make, or None."""
    if RESERVED_BRANCH_RE.fullmatch(branch_part):
        return "stable, per-commit, rollback and yank tags are made only by promotion and the build itself"
    if PLATFORM_SUFFIX_RE.search(f"-{branch_part}"):
        return "per-platform tags (<tag>-<os>-<arch>) are made only by multi-platform builds"
    return None


def sanitize_branch(branch: str, *, prefix: str) -> str:
    """``<prefix>-<branch>`` as a valid tag of at most 128 characters that no other branch gets.

    A branch name that is a valid tag part and not reserved is used as it is. Any other (characters
    Docker does not allow, which become '-'; a name that would make a reserved tag such as
    ``stable``, ``git-<sha12>`` or ``main-linux-arm64``; a name too long) gets a short hash of the
    whole branch name appended, so ``feat/x`` and ``feat-x`` never share a tag.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).strip(".-") or "unknown"
    tag = f"{prefix}-{cleaned}"
    if cleaned != branch or reserved(cleaned) or len(tag) > MAX_TAG:
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
