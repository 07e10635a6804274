"""Revocations (yanks): a reason bound to an image digest, kept in the registry next to the image.

A revocation is an OCI artifact whose ``subject`` is the yanked digest, listed as its referrer and
tagged ``sha256-<hex>.yank`` so a tag list answers "is this digest yanked?" without more requests.
It outlives the image's tags: promotion, rollback and reuse read it and refuse the digest.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from stack_builder.registry import referrers
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import REVOCATION_ARTIFACT

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Revocation:
    image: str
    repository: str
    digest: str
    reason: str
    time: str
    by: str
    tags_removed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.digest[:19]} was yanked {self.time} by {self.by}: {self.reason}"


def yank_tag(digest: str) -> str:
    return f"{digest.replace(':', '-')}.yank"


def write(registry: RegistryClient, revocation: Revocation) -> str:
    """Store the revocation (before any tag is removed, so a failure part way still refuses the digest)."""
    payload = json.dumps(asdict(revocation), sort_keys=True).encode()
    return referrers.attach(registry, revocation.repository, revocation.digest, REVOCATION_ARTIFACT, payload,
                            annotations={"org.opencontainers.image.created": revocation.time,
                                         "io.stack-builder.reason": revocation.reason[:200]},
                            tag=yank_tag(revocation.digest))


def read(registry: RegistryClient, repository: str, digest: str) -> Revocation | None:
    """The revocation of ``repository@digest``, or None when it was never yanked."""
    manifest = registry.get_manifest(repository, yank_tag(digest))
    if manifest is None:
        return None
    try:
        parsed = json.loads(manifest.body)
        if parsed["subject"]["digest"] != digest:
            return None
        data = json.loads(registry.get_blob(repository, str(parsed["layers"][0]["digest"])))
        return Revocation(image=str(data["image"]), repository=str(data["repository"]), digest=str(data["digest"]),
                          reason=str(data["reason"]), time=str(data["time"]), by=str(data["by"]),
                          tags_removed=[str(t) for t in data.get("tags_removed") or []])
    except (ValueError, KeyError, IndexError, TypeError):
        LOGGER.warning("%s: the revocation of %s is unreadable; treating the digest as yanked", repository, digest)
        return Revocation("", repository, digest, "(unreadable revocation record)", "", "")
