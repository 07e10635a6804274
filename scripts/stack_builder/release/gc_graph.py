"""What a registry holds, as ``gc`` sees it: each repository's tags and the manifests they reach. Pure data.

A manifest is a node: an index (its ``children``: platform manifests, attestation manifests), an image or an
artifact (its ``blobs``: config and layers, with their sizes), with the ``subject`` it refers to when it is a
referrer (an SBOM, a signature, a statement, a gate or yank record). Referrers are found three ways, all of
which end up as a ``subject`` here: the manifest's own ``subject`` field, the distribution spec's referrers tag
fallback (an index tagged ``sha256-<hex>`` listing them) and the tag-name schemes of cosign and of this tool
(``sha256-<hex>.sig``, ``.att``, ``.sbom``, ``.yank``, ``.gpu-test``, ...).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Mapping

SUBJECT_TAG = re.compile(r"sha256-([0-9a-f]{64})(?:\.([A-Za-z0-9_.-]+))?")  # referrers fallback, or a scheme's tag


@dataclass(frozen=True)
class Node:
    """One manifest of one repository."""

    digest: str
    media_type: str = ""
    size: int = 0  # bytes of the manifest itself
    children: tuple[str, ...] = ()  # an index's entries
    blobs: tuple[tuple[str, int], ...] = ()  # (digest, size) of its config and layers
    subject: str | None = None  # the digest it refers to, when it is a referrer
    created: str | None = None  # the image's org.opencontainers.image.created label (an index: its first image's)
    version: str | None = None  # the image's org.opencontainers.image.version label: the build tag, <prefix>-<branch>


@dataclass(frozen=True)
class Repository:
    """One repository: its tags (tag -> digest) and every manifest the scan found in it."""

    name: str
    tags: Mapping[str, str]
    nodes: Mapping[str, Node]
    history: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # history tag -> the digests it names
    versions: Mapping[str, str] = field(default_factory=dict)  # GHCR: digest -> its package version's created time
    missing: frozenset[str] = frozenset()  # index entries the registry no longer serves

    def node(self, digest: str) -> Node | None:
        return self.nodes.get(digest)

    def referrers(self) -> dict[str, list[str]]:
        """subject digest -> the digests that refer to it (the manifests whose subject it is)."""
        found: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.subject:
                found.setdefault(node.subject, []).append(node.digest)
        return found

    def edges(self, digest: str, referrers: Mapping[str, list[str]]) -> Iterator[tuple[str, str]]:
        """What ``digest`` keeps alive, each with how: its children, and what refers to it."""
        node = self.nodes.get(digest)
        for child in node.children if node else ():
            yield child, f"a manifest of index {digest[:19]}"
        for referrer in referrers.get(digest, ()):
            yield referrer, f"a referrer of {digest[:19]}"


def subject_of_tag(tag: str) -> str | None:
    """The digest a referrers-fallback or scheme tag (``sha256-<hex>``, ``sha256-<hex>.sig``) is about."""
    found = SUBJECT_TAG.fullmatch(tag)
    return f"sha256:{found.group(1)}" if found else None


def blob_bytes(repository: Repository, digests: set[str]) -> int:
    """Bytes of the blobs that only the manifests ``digests`` use (no other manifest of the repository), plus those
    manifests themselves: what deleting them frees, once the registry collects its garbage."""
    others: set[str] = set()
    for digest, node in repository.nodes.items():
        if digest not in digests:
            others.update(blob for blob, _ in node.blobs)
    only: dict[str, int] = {}
    manifests = 0
    for digest in digests:
        found = repository.nodes.get(digest)
        if found is None:
            continue
        manifests += found.size
        only.update({blob: size for blob, size in found.blobs if blob not in others})
    return manifests + sum(only.values())
