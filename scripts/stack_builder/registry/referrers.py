"""Artifacts that refer to an image (SBOMs, revocations): stored with ``subject``, found as referrers.

An artifact is an OCI manifest with an ``artifactType``, an empty config and one layer (its
payload), whose ``subject`` is the image digest. A registry with the OCI 1.1 referrers API lists it
by itself. Where the registry has no such API (distribution 2.8, our local one), the referrers tag
fallback of the distribution spec is kept: an OCI index under the tag ``sha256-<hex>`` that lists
every referrer, so any OCI client (cosign, oras, crane) finds the same artifacts.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST

LOGGER = logging.getLogger(__name__)

EMPTY_CONFIG = b"{}"


@dataclass(frozen=True)
class Referrer:
    digest: str
    artifact_type: str
    annotations: dict[str, str]


def fallback_tag(subject: str) -> str:
    """The referrers tag of the distribution spec: ``sha256-<hex>`` for ``sha256:<hex>``."""
    return subject.replace(":", "-")


def attach(registry: RegistryClient, repository: str, subject: str, artifact_type: str, payload: bytes, *,
           annotations: dict[str, str] | None = None, tag: str | None = None) -> str:
    """Store ``payload`` as an artifact of ``repository@subject``; return the artifact's digest.

    ``tag`` also names it (for a lookup by name); the referrers index is kept either way."""
    found = registry.get_manifest(repository, subject)
    if found is None:
        raise RegistryError(f"cannot attach {artifact_type} to {repository}@{subject}: it is not in registry "
                            f"{registry.host}")
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.upload_blob(repository, EMPTY_CONFIG),
                   "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": artifact_type, "digest": registry.upload_blob(repository, payload),
                    "size": len(payload)}],
        "subject": {"mediaType": found.media_type, "digest": subject, "size": len(found.body)},
        "annotations": dict(annotations or {}),
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    digest = registry.put_manifest(repository, tag or _digest_of(body), body, OCI_MANIFEST)
    if registry.referrers(repository, subject) is None:
        _add_to_fallback(registry, repository, subject, {
            "mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type,
            "annotations": dict(annotations or {})})
    LOGGER.info("attached %s to %s@%s as %s", artifact_type, repository, subject[:19], digest[:19])
    return digest


def _digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _add_to_fallback(registry: RegistryClient, repository: str, subject: str, descriptor: dict[str, Any]) -> None:
    index = _fallback_index(registry, repository, subject)
    entries = [e for e in index["manifests"] if e.get("digest") != descriptor["digest"]]
    index["manifests"] = [*entries, descriptor]
    registry.put_manifest(repository, fallback_tag(subject), json.dumps(index, sort_keys=True).encode(), OCI_INDEX)


def _fallback_index(registry: RegistryClient, repository: str, subject: str) -> dict[str, Any]:
    found = registry.get_manifest(repository, fallback_tag(subject))
    empty: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if found is None:
        return empty
    try:
        index = json.loads(found.body)
    except ValueError:
        return empty
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        return empty
    index["manifests"] = [e for e in index["manifests"] if isinstance(e, dict)]
    return index


def find(registry: RegistryClient, repository: str, subject: str, artifact_type: str | None = None) -> list[Referrer]:
    """The artifacts that refer to ``repository@subject`` (of ``artifact_type`` when given), oldest first,
    through the referrers API, else the referrers tag."""
    listed = registry.referrers(repository, subject)
    index = listed if listed is not None else _fallback_index(registry, repository, subject)
    items = index.get("manifests")
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not str(item.get("digest", "")).startswith("sha256:"):
            continue
        kind = str(item.get("artifactType", ""))
        if artifact_type is not None and kind != artifact_type:
            continue
        notes = item.get("annotations")
        found.append(Referrer(str(item["digest"]), kind, {str(k): str(v) for k, v in notes.items()}
                              if isinstance(notes, dict) else {}))
    return found


def payload(registry: RegistryClient, repository: str, artifact: str, subject: str) -> bytes:
    """The payload of the artifact ``repository@artifact``, checked to refer to ``subject``."""
    manifest = registry.get_manifest(repository, artifact)
    if manifest is None:
        raise RegistryError(f"{repository}@{artifact} is listed as a referrer of {subject} but is not in the registry")
    try:
        parsed = json.loads(manifest.body)
        if parsed["subject"]["digest"] != subject:
            raise RegistryError(f"{repository}@{artifact} does not refer to {subject}")
        layer = str(parsed["layers"][0]["digest"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise RegistryError(f"{repository}@{artifact} is not an artifact with one payload") from None
    return registry.get_blob(repository, layer)
