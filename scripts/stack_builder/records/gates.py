"""Gate records: results bound to an exact image digest, kept in the registry next to the image.

Each record is a small OCI artifact in the image's own repository, tagged
``sha256-<hex>.<kind>`` and pointing at the image with ``subject``. It survives across
machines and workflow runs, and a promotion reads it for the exact digest it would move.

Anyone who can push can write a record. So, with signing configured, the job that ran the gate also
attaches a signed statement of its result to the digest (``registry/gate_statements.py``), and a
promotion believes a record only when such a statement, from that job's signer, vouches for it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from stack_builder.errors import RegistryError
from stack_builder.registry import gate_statements
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import GATE_ARTIFACT as ARTIFACT_TYPE, OCI_EMPTY as EMPTY_CONFIG, OCI_MANIFEST
from stack_builder.registry.signing import Signing
from stack_builder.records.files import utc_now

LOGGER = logging.getLogger(__name__)

GPU, MODEL = "gpu-test", "model-check"
KINDS = (GPU, MODEL)
# Keyless, the workflow whose job runs a gate and signs its statement, where it is not the build's own
# (STACK_SIGNING_WORKFLOW, main.yml): the GPU tests run on a GPU host in test_gpu.yml, and a certificate
# names the workflow file that ran (a reusable workflow's own, when tag.yml calls it). The model checks and
# drift run in the build's jobs, whose identity the build statements are verified against already.
GATE_WORKFLOWS = {GPU: ".github/workflows/stack-gpu.yml"}  # the reusable workflow whose jobs run the GPU gate


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


def write_record(registry: RegistryClient, repository: str, digest: str, record: GateRecord, *,
                 signing: Signing | None = None) -> GateRecord:
    """Store ``record`` as the gate record of ``repository@digest``; return what was stored. With ``signing``
    that can sign, the job's signed statement of the result is attached to the digest too (``SigningError``
    if it cannot be: the record is stored, and a promotion refuses it for want of the statement)."""
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
    if signing is not None and signing.can_sign:
        gate_statements.attach(signing, f"{registry.host}/{repository}@{digest}", statement_of(stored),
                               registry.credentials)
    return stored


def statement_of(record: GateRecord) -> gate_statements.GateStatement:
    """What the job that ran the gate says of its digest: the record's result, summary and what was checked."""
    passed, failed = _checks(record.details)
    if not passed and not failed:  # no named checks (GPU tests are counted): the gate itself is the test
        passed, failed = ([record.kind], []) if record.passed else ([], [record.kind])
    return gate_statements.GateStatement(record.kind, record.image, record.digest, record.passed, record.summary,
                                         tuple(passed), tuple(failed), record.recorded)


def _checks(details: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(passed, failed): the named checks in a record's details (a model's functional checks, its drift, each
    platform of an index; the GPU tests' failures)."""
    passed: list[str] = []
    failed: list[str] = []
    named = {f"functional.{k}": v for k, v in (details.get("functional") or {}).items() if isinstance(v, bool)}
    drift = details.get("drift")
    if isinstance(drift, dict) and isinstance(drift.get("passed"), bool):
        named["drift"] = drift["passed"]
    for platform, result in (details.get("platforms") or {}).items():
        if isinstance(result, dict) and isinstance(result.get("passed"), bool):
            named[f"platform {platform}"] = result["passed"]
    for name, ok in named.items():
        (passed if ok else failed).append(name)
    tests = details.get("tests")
    if isinstance(tests, dict):
        failed += [str(f) for f in tests.get("failures") or []]
    return passed, failed


def signer_for(signing: Signing, kind: str) -> Signing:
    """Whose statements are believed for a ``kind`` gate: the signer of the job that runs it."""
    workflow = GATE_WORKFLOWS.get(kind)
    return gate_statements.signer(signing, workflow) if workflow else signing


def vouching(signing: Signing, registry: RegistryClient, reference: str, kind: str, *,
             commit: str = "") -> gate_statements.GateStatement | None:
    """The newest ``kind`` statement on ``host/repository@digest`` from the signer of that gate's job, if any
    (``commit``, keyless: that job on any ref, at that commit)."""
    signer = signer_for(signing, kind)
    if commit and not signer.binds_commits:
        return None
    return gate_statements.latest(signer, reference, registry.credentials, kind, commit=commit)


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
