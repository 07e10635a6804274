"""What ``gc`` keeps and what it may delete: the keep rules, and reachability from what they keep. Pure.

Fails closed. A tag is a root (kept, with everything it reaches) unless it is a per-commit build tag
(``<prefix>-git-<sha12>``, with its per-platform tags ``...-<os>-<arch>``) that the rules let go:
- stable tags (``stable``, ``<prefix>-stable``), the promotion histories and every digest they name (a rollback
  may need any of them), revocation records (``sha256-<hex>.yank``: they outlive their image), branch build tags,
  content tags and any tag of a kind this module does not know: kept;
- per-commit builds: the newest ``builds`` of each branch (the branch is the image's
  ``org.opencontainers.image.version`` label, ``<prefix>-<branch>``), any younger than ``days`` days, and any whose
  age or branch cannot be read: kept;
- digests named with ``--keep``: kept.
Reachability then follows indexes to their platform manifests and every manifest to its referrers (SBOMs,
signatures, statements, gate and yank records, referrers indexes). Only what nothing reaches is deleted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Iterable, Mapping

from stack_builder.release.gc_graph import Repository, SUBJECT_TAG, blob_bytes
from stack_builder.spec.retention import DEFAULT_BUILDS, DEFAULT_DAYS

COMMIT_TAG = re.compile(r"(?P<stem>.+-git-[0-9a-f]{12})(?:-.+)?")


class TagKind(str, Enum):
    STABLE = "stable"
    HISTORY = "promotion history"
    REVOCATION = "revocation"
    REFERRER = "referrer"  # a referrers index or a scheme's artifact: kept with its subject
    COMMIT = "per-commit build"
    OTHER = "tag"  # a branch's build tag, a content tag, a per-platform tag of those, anything else


def tag_kind(tag: str) -> TagKind:
    if tag.startswith("promotions."):  # (promotions.2026.4-stable is a history, not a stable tag)
        return TagKind.HISTORY
    if tag == "stable" or tag.endswith("-stable"):
        return TagKind.STABLE
    found = SUBJECT_TAG.fullmatch(tag)
    if found:
        return TagKind.REVOCATION if found.group(2) == "yank" else TagKind.REFERRER
    return TagKind.COMMIT if COMMIT_TAG.fullmatch(tag) else TagKind.OTHER


@dataclass(frozen=True)
class KeepRules:
    builds: int = DEFAULT_BUILDS  # per-commit builds kept per branch, newest first
    days: int = DEFAULT_DAYS  # anything younger is kept
    keep: frozenset[str] = frozenset()  # digests kept whatever the rules say (--keep)
    keep_commits: frozenset[str] = frozenset()  # commits whose per-commit builds are kept (--keep-commit)
    now: datetime = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Role(str, Enum):
    """What a deleted manifest is to the others: the order deletes go in (referrers, platform manifests, the rest)."""

    REFERRER = "referrer"
    PLATFORM = "platform manifest"
    TOP = "index or image"


@dataclass(frozen=True)
class Deletion:
    repository: str
    digest: str
    tags: tuple[str, ...]  # the tags that go with it
    why: str
    role: Role = Role.TOP


@dataclass(frozen=True)
class RepositoryPlan:
    name: str
    kept: Mapping[str, str]  # digest -> why it is kept
    deletions: tuple[Deletion, ...]
    bytes_freed: int
    broken: tuple[str, ...] = ()  # manifests something kept needs that the registry no longer serves


def plan_repository(repository: Repository, rules: KeepRules) -> RepositoryPlan:
    """What to keep of ``repository`` (with why) and what to delete, and the bytes that deleting frees."""
    roots = _roots(repository, rules)
    kept = _reach(repository, roots)
    by_digest: dict[str, list[str]] = {}
    for tag, digest in repository.tags.items():
        by_digest.setdefault(digest, []).append(tag)
    gone = [digest for digest in repository.nodes if digest not in kept]
    children = {child for node in repository.nodes.values() for child in node.children}
    deletions = tuple(Deletion(repository.name, digest, tuple(sorted(by_digest.get(digest, ()))),
                               _why_deleted(repository, digest, by_digest.get(digest, []), rules),
                               _role(repository, digest, children))
                      for digest in sorted(gone))
    broken = tuple(sorted(digest for digest in kept if digest in repository.missing))
    present = {digest: why for digest, why in kept.items() if digest in repository.nodes}  # (not: absent ones)
    return RepositoryPlan(repository.name, present, deletions, blob_bytes(repository, set(gone)), broken)


def _roots(repository: Repository, rules: KeepRules) -> dict[str, str]:
    roots: dict[str, str] = {}
    for tag, digest in sorted(repository.tags.items()):
        kind = tag_kind(tag)
        if kind in (TagKind.STABLE, TagKind.HISTORY, TagKind.REVOCATION, TagKind.OTHER):
            roots.setdefault(digest, f"{kind.value} {tag}")
        if kind is TagKind.HISTORY:
            for named in repository.history.get(tag, ()):
                roots.setdefault(named, f"named in the promotion history {tag} (a rollback may need it)")
    for stem, digest, why in _kept_builds(repository, rules):
        for tag, tagged in repository.tags.items():
            if tag == stem or tag.startswith(stem + "-"):
                roots.setdefault(tagged, f"per-commit build {stem}: {why}")
        roots.setdefault(digest, f"per-commit build {stem}: {why}")
    for digest, created in repository.versions.items():  # GHCR's package versions, tagged or not
        if _younger(created, rules):
            roots.setdefault(digest, f"pushed less than {rules.days} days ago")
    for digest in rules.keep:
        roots[digest] = "named with --keep"
    for tag, digest in repository.tags.items():
        found = COMMIT_TAG.fullmatch(tag)
        if found and tag_kind(tag) is TagKind.COMMIT and found.group("stem")[-12:] in rules.keep_commits:
            roots.setdefault(digest, f"per-commit build of {found.group('stem')[-12:]}, named with --keep-commit")
    return roots


def _kept_builds(repository: Repository, rules: KeepRules) -> Iterable[tuple[str, str, str]]:
    """(stem, digest, why) of each per-commit build the rules keep."""
    stems: dict[str, str] = {}
    for tag, digest in repository.tags.items():
        found = COMMIT_TAG.fullmatch(tag)
        if found and tag_kind(tag) is TagKind.COMMIT and (tag == found.group("stem") or found.group("stem")
                                                            not in stems):
            stems[found.group("stem")] = digest
    by_branch: dict[str, list[tuple[str, str, str]]] = {}
    for stem, digest in stems.items():
        node = repository.node(digest)
        created, version = (node.created, node.version) if node else (None, None)
        if not created or not version:
            yield stem, digest, "its age or branch cannot be read (kept to be safe)"
            continue
        if _younger(created, rules):
            yield stem, digest, f"younger than {rules.days} days"
        by_branch.setdefault(version, []).append((created, stem, digest))
    for version, builds in by_branch.items():
        for _created, stem, digest in sorted(builds, reverse=True)[:rules.builds]:
            yield stem, digest, f"one of the newest {rules.builds} builds of {version}"


def _younger(created: str, rules: KeepRules) -> bool:
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return True  # unreadable: kept
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return rules.now - when < timedelta(days=rules.days)


def _reach(repository: Repository, roots: Mapping[str, str]) -> dict[str, str]:
    kept = dict(roots)
    referrers = repository.referrers()
    queue = list(roots)
    while queue:
        digest = queue.pop()
        for reached, how in repository.edges(digest, referrers):
            if reached not in kept:
                kept[reached] = how
                queue.append(reached)
    return kept


def _role(repository: Repository, digest: str, children: set[str]) -> Role:
    node = repository.nodes[digest]
    return Role.REFERRER if node.subject else Role.PLATFORM if digest in children else Role.TOP


def _why_deleted(repository: Repository, digest: str, tags: list[str], rules: KeepRules) -> str:
    subject = repository.nodes[digest].subject
    if subject:
        return f"refers to {subject[:19]}, which nothing kept reaches"
    if not tags:
        return "nothing kept reaches it"
    builds = [t for t in tags if tag_kind(t) is TagKind.COMMIT]
    if builds and len(builds) == len(tags):
        return (f"a per-commit build older than {rules.days} days and not among the newest {rules.builds} of its "
                "branch")
    return f"its tags ({', '.join(sorted(tags))}) are kept by no rule"
