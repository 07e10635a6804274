"""Reading a registry for ``gc``: each repository's tags, every manifest they reach (index entries, referrers),
the labels of the per-commit builds, the promotion histories, and on GHCR every package version. Read-only,
many requests at once (``registry.lookups``)."""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from stack_builder.errors import RegistryError
from stack_builder.records import promotions
from stack_builder.registry import github_packages
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stack_builder.registry.mediatypes import INDEX_TYPES
from stack_builder.release.gc_graph import Node, Repository, subject_of_tag
from stack_builder.release.gc_rules import COMMIT_TAG, TagKind, tag_kind

LOGGER = logging.getLogger(__name__)

CREATED, VERSION = "org.opencontainers.image.created", "org.opencontainers.image.version"


def scan(client: RegistryClient, repositories: list[str]) -> list[Repository]:
    """Every repository as ``gc`` needs to see it. Raises ``RegistryError`` when any of it cannot be read: a
    plan made from half a picture could delete what the other half keeps."""
    lookups = Lookups(client)
    # Each tag list asked for itself: never the catalog's shortcut (a repository it says is absent would read as
    # empty, and in gc an empty picture deletes).
    lookups.each(lambda name: len(lookups.tags(name)), repositories)
    return [scan_repository(lookups, name) for name in repositories]


def scan_repository(lookups: Lookups, name: str) -> Repository:
    tags = sorted(lookups.tags(name))
    digests = dict(zip(tags, lookups.each(lambda tag: _digest(lookups, name, tag), tags)))
    listed = _package_versions(lookups.registry, name)
    versions = {v.digest: v.created for v in listed}
    _merge_api_tags(name, digests, listed)
    nodes: dict[str, Node] = {}
    missing: set[str] = set()
    # The subjects that referrers tags name: an image whose tags are all gone is still there, untagged, and still
    # has its referrers; it is found here (or it was deleted already, and is skipped).
    named = sorted({s for tag in tags if (s := subject_of_tag(tag))} - set(digests.values()) - set(versions))
    present = lookups.each(lambda digest: lookups.manifest(name, digest) is not None, named)
    todo = sorted(set(digests.values()) | set(versions) | {d for d, ok in zip(named, present) if ok})
    first = True
    while todo:
        found = lookups.each(lambda digest: _node(lookups, name, digest, required=first), todo)
        missing.update(d for d, node in zip(todo, found) if node is None)
        present_nodes = [node for node in found if node is not None]
        nodes.update((node.digest, node) for node in present_nodes)
        todo = sorted({child for node in present_nodes for child in node.children} - set(nodes) - missing)
        first = False
    for tag, digest in digests.items():  # a scheme's tag names the subject its manifest may not
        subject = subject_of_tag(tag)
        if subject and digest in nodes and nodes[digest].subject is None:
            nodes[digest] = replace(nodes[digest], subject=subject)
    _label_builds(lookups, name, digests, nodes)
    history = {tag: _history_digests(lookups.registry, name, tag) for tag in tags if tag_kind(tag) is TagKind.HISTORY}
    LOGGER.info("%s: %d tags, %d manifests", name, len(tags), len(nodes))
    return Repository(name, digests, nodes, history, versions, frozenset(missing))


def _digest(lookups: Lookups, name: str, tag: str) -> str:
    manifest = lookups.manifest(name, tag)
    if manifest is None:
        raise RegistryError(f"{name}:{tag} is listed but the registry does not serve it: run gc again once the "
                            "registry is consistent")
    return manifest.digest


def _node(lookups: Lookups, name: str, digest: str, *, required: bool) -> Node | None:
    """The manifest ``digest`` as a node; None for an index entry the registry no longer serves (an index broken
    before, or by a gc stopped part way: it is deleted with its index, or reported when something kept needs it)."""
    manifest = lookups.manifest(name, digest)
    if manifest is None:
        if not required:
            return None
        raise RegistryError(f"{name}@{digest} is referred to but the registry does not serve it")
    try:
        body: dict[str, Any] = json.loads(manifest.body)
        subject = body.get("subject")
        node = Node(digest=digest, media_type=manifest.media_type, size=len(manifest.body),
                    subject=str(subject["digest"]) if isinstance(subject, dict) else None)
        if manifest.media_type in INDEX_TYPES or "manifests" in body:
            return replace(node, children=tuple(str(m["digest"]) for m in body.get("manifests") or []))
        blobs = [body["config"], *(body.get("layers") or [])] if "config" in body else body.get("layers") or []
        return replace(node, blobs=tuple((str(b["digest"]), int(b.get("size", 0))) for b in blobs))
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{name}@{digest} is not a manifest gc can read ({type(exc).__name__}): it is not "
                            "deleted, and nothing is deleted until it can be read") from None


def _label_builds(lookups: Lookups, name: str, digests: dict[str, str], nodes: dict[str, Node]) -> None:
    """The created and version labels of each per-commit build (of an index: of its first image)."""
    builds = sorted({digest for tag, digest in digests.items() if COMMIT_TAG.fullmatch(tag)
                     and tag_kind(tag) is TagKind.COMMIT})

    def labels(digest: str) -> dict[str, str]:
        node = nodes[digest]
        image = node.children[0] if node.children else digest
        try:
            return lookups.labels(name, image)
        except RegistryError as exc:
            LOGGER.warning("%s@%s: labels unreadable (%s): kept", name, digest[:19], exc)
            return {}

    for digest, found in zip(builds, lookups.each(labels, builds)):
        nodes[digest] = replace(nodes[digest], created=found.get(CREATED), version=found.get(VERSION))


def _history_digests(client: RegistryClient, name: str, tag: str) -> tuple[str, ...]:
    entries = promotions.read(client, name, tag.removeprefix("promotions."))
    return tuple(sorted({d for e in entries for d in (e.before, e.after) if d}))


def _package_versions(client: RegistryClient, name: str) -> list[github_packages.PackageVersion]:
    """On GHCR, every package version (tagged or not). Elsewhere none: the distribution API cannot list untagged
    manifests, so gc sees (and deletes) only what tags reach."""
    if not github_packages.is_ghcr(client.host):
        return []
    if client.credentials is None:
        raise RegistryError("gc on GHCR needs a token: set STACK_REGISTRY_USER and STACK_REGISTRY_PASSWORD")
    return github_packages.list_versions(name, client.credentials.password, api=client.settings.github_api)


def _merge_api_tags(name: str, digests: dict[str, str], listed: list[github_packages.PackageVersion]) -> None:
    """The tags GitHub's API gives each package version, into the tag map; a tag the two disagree about stops gc
    (a version the registry's tag list missed would otherwise look untagged, and go)."""
    for version in listed:
        for tag in version.tags:
            if digests.setdefault(tag, version.digest) != version.digest:
                raise RegistryError(f"{name}:{tag}: the registry serves {digests[tag][:19]}, GitHub's API says "
                                    f"{version.digest[:19]}: nothing is planned while they disagree; run gc again")
