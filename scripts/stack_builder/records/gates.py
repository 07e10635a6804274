"""Gate records: results bound to an exact image digest, kept in the registry next to the image.

Each record is a small OCI artifact in the image's own repository, tagged
``sha256-<hex>.<kind>`` and pointing at the image with ``subject``. It survives across
machines and workflow runs, and a promotion reads it for the exact digest it would move.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.records.report import utc_now

LOGGER = logging.getLogger(__name__)

ARTIFACT_TYPE = "application/vnd.stack-builder.gate.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GPU, MODEL = "gpu-test", "model-check"


def record_tag(digest: str, kind: str) -> str:
    return f"{digest.replace(':', '-')}.{kind}"


def write_record(registry: RegistryClient, repository: str, digest: str, kind: str,
                 payload: dict[str, Any]) -> dict[str, Any]:
    """Store ``payload`` as the ``kind`` record of ``repository@digest``; return what was stored."""
    subject = registry.get_manifest(repository, digest)
    if subject is None:
        raise RegistryError(f"cannot record {kind} for {repository}@{digest}: the image is not in registry "
                            f"{registry.host}")
    record = {**payload, "kind": kind, "repository": repository, "digest": digest,
              "recorded": utc_now()}
    body = json.dumps(record, sort_keys=True).encode()
    config = b"{}"
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": registry.upload_blob(repository, config), "size": len(config)},
        "layers": [{"mediaType": ARTIFACT_TYPE, "digest": registry.upload_blob(repository, body), "size": len(body)}],
        "subject": {"mediaType": subject.media_type, "digest": digest, "size": len(subject.body)},
        "annotations": {"org.opencontainers.image.created": record["recorded"], "stack-builder.kind": kind},
    }
    registry.put_manifest(repository, record_tag(digest, kind), json.dumps(manifest).encode(), OCI_MANIFEST)
    LOGGER.info("recorded %s for %s@%s: %s", kind, repository, digest[:19], "passed" if record.get("passed")
                else "FAILED")
    return record


def read_record(registry: RegistryClient, repository: str, digest: str, kind: str) -> dict[str, Any] | None:
    """The ``kind`` record of ``repository@digest``, or None; a record for another digest is rejected."""
    manifest = registry.get_manifest(repository, record_tag(digest, kind))
    if manifest is None:
        return None
    try:
        parsed = json.loads(manifest.body)
        if parsed.get("subject", {}).get("digest") != digest:
            return None
        layer = parsed["layers"][0]["digest"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    try:
        record = json.loads(registry.get_blob(repository, layer))
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("digest") == digest else None
