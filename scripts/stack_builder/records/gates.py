"""Gate records: results bound to an exact image digest, kept in the registry next to the image.

Each record is a small OCI artifact in the image's own repository, tagged
``sha256-<hex>.<kind>`` and pointing at the image with ``subject``. It survives across
machines and workflow runs, and a promotion reads it for the exact digest it would move.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import GATE_ARTIFACT as ARTIFACT_TYPE, OCI_EMPTY as EMPTY_CONFIG, OCI_MANIFEST
from stack_builder.records.files import utc_now

LOGGER = logging.getLogger(__name__)

GPU, MODEL = "gpu-test", "model-check"
KINDS = (GPU, MODEL)


@dataclass(frozen=True)
class GateRecord:
    """One gate's result for one digest. The only schema of the records: written and read here.

    ``details`` holds what the kind adds: for a GPU test the JUnit counts, the engine and who ran
    it; for a model check the functional checks, the drift result and, for an index, each platform.
    """

    kind: str
    image: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    repository: str = ""
    digest: str = ""
    recorded: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "image": self.image, "passed": self.passed, "summary": self.summary,
                "details": self.details, "repository": self.repository, "digest": self.digest,
                "recorded": self.recorded}

    @classmethod
    def from_json(cls, data: Any) -> "GateRecord | None":
        """The record in ``data``, or None when it is not one of ours."""
        if not isinstance(data, dict) or data.get("kind") not in KINDS or not isinstance(data.get("passed"), bool):
            return None
        base = {"kind", "image", "passed", "summary", "details", "repository", "digest", "recorded"}
        # Records written before ``details`` existed kept those facts at the top level.
        nested = data.get("details")
        details: dict[str, Any] = nested if isinstance(nested, dict) else \
            {k: v for k, v in data.items() if k not in base}
        return cls(kind=data["kind"], image=str(data.get("image", "")), passed=data["passed"],
                   summary=str(data.get("summary", "")), details=dict(details),
                   repository=str(data.get("repository", "")), digest=str(data.get("digest", "")),
                   recorded=str(data.get("recorded", "")))


def record_tag(digest: str, kind: str) -> str:
    return f"{digest.replace(':', '-')}.{kind}"


def write_record(registry: RegistryClient, repository: str, digest: str, record: GateRecord) -> GateRecord:
    """Store ``record`` as the gate record of ``repository@digest``; return what was stored."""
    subject = registry.get_manifest(repository, digest)
    if subject is None:
        raise RegistryError(f"cannot record {record.kind} for {repository}@{digest}: the image is not in registry "
                            f"{registry.host}")
    stored = GateRecord(record.kind, record.image, record.passed, record.summary, record.details,
                        repository=repository, digest=digest, recorded=utc_now())
    body = json.dumps(stored.as_json(), sort_keys=True).encode()
    config = b"{}"
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": registry.upload_blob(repository, config), "size": len(config)},
        "layers": [{"mediaType": ARTIFACT_TYPE, "digest": registry.upload_blob(repository, body), "size": len(body)}],
        "subject": {"mediaType": subject.media_type, "digest": digest, "size": len(subject.body)},
        "annotations": {"org.opencontainers.image.created": stored.recorded, "stack-builder.kind": record.kind},
    }
    registry.put_manifest(repository, record_tag(digest, record.kind), json.dumps(manifest).encode(), OCI_MANIFEST)
    LOGGER.info("recorded %s for %s@%s: %s", record.kind, repository, digest[:19],
                "passed" if record.passed else "FAILED")
    return stored


def read_record(registry: RegistryClient, repository: str, digest: str, kind: str) -> GateRecord | None:
    """The ``kind`` record of ``repository@digest``, or None; a record for another digest is rejected."""
    manifest = registry.get_manifest(repository, record_tag(digest, kind))
    if manifest is None:
        return None
    try:
        parsed = json.loads(manifest.body)
        if parsed.get("subject", {}).get("digest") != digest:
            return None
        layer = parsed["layers"][0]["digest"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    try:
        record = GateRecord.from_json(json.loads(registry.get_blob(repository, layer)))
    except ValueError:
        return None
    return record if record is not None and record.kind == kind and record.digest == digest else None
