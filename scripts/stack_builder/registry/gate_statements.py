"""Signed gate statements: a gate's result (the GPU tests, a model's checks and drift) as the job that ran the
gate says it, so that a promotion never believes a gate record on the word of whoever can write the registry.

A statement is an in-toto statement with the test-result predicate (v0.1), attached to the digest by cosign
(``cosign attest``) and signed with the stack's key or the gate job's keyless identity. Its ``result`` is
PASSED or FAILED; its ``configuration`` names the gate (its kind), the image and the gate's summary; its
``passedTests`` and ``failedTests`` name what was checked. The digest is the statement's subject.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stack_builder.registry.credentials import Credentials
from stack_builder.registry.signing import Signing, keyless_identities, sibling_workflow
from stack_builder.settings import SigningSettings

LOGGER = logging.getLogger(__name__)

PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
GATE_URI = "https://github.com/stack-builder/gate/v1"  # what the configuration's annotations below mean
PASSED, FAILED = "PASSED", "FAILED"


@dataclass(frozen=True)
class GateStatement:
    """What the job that ran one gate says of one digest."""

    kind: str  # the gate: gates.GPU, gates.MODEL
    image: str
    digest: str
    passed: bool
    summary: str = ""
    passed_tests: tuple[str, ...] = ()
    failed_tests: tuple[str, ...] = ()
    recorded: str = ""  # when the gate's record was written (UTC, ISO 8601): the newest statement counts

    def predicate(self) -> dict[str, Any]:
        return {
            "result": PASSED if self.passed else FAILED,
            "configuration": [{"name": f"stack-builder {self.kind}", "uri": GATE_URI,
                               "annotations": {"gate": self.kind, "image": self.image, "summary": self.summary,
                                               "recorded": self.recorded}}],
            "passedTests": list(self.passed_tests),
            "warnedTests": [],
            "failedTests": list(self.failed_tests),
        }

    @classmethod
    def parse(cls, statement: bytes, digest: str, kind: str) -> "GateStatement | None":
        """The statement, if it is a gate statement of ours for ``kind`` whose subject is ``digest``; else None."""
        try:
            data = json.loads(statement)
            subjects = {"sha256:" + str(s["digest"]["sha256"]) for s in data["subject"]}
            if data.get("predicateType") != PREDICATE_TYPE or digest not in subjects:
                return None
            predicate = data["predicate"]
            ours = [c.get("annotations") or {} for c in predicate.get("configuration") or []
                    if isinstance(c, dict) and c.get("uri") == GATE_URI]
            if len(ours) != 1 or ours[0].get("gate") != kind or predicate.get("result") not in (PASSED, FAILED):
                return None
            gate = ours[0]
            return cls(kind=kind, image=str(gate.get("image") or ""), digest=digest,
                       passed=predicate["result"] == PASSED, summary=str(gate.get("summary") or ""),
                       passed_tests=tuple(str(t) for t in predicate.get("passedTests") or []),
                       failed_tests=tuple(str(t) for t in predicate.get("failedTests") or []),
                       recorded=str(gate.get("recorded") or ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def attach(signing: Signing, reference: str, statement: GateStatement, credentials: Credentials | None) -> None:
    """Sign ``statement`` and attach it to ``host/repository@digest``. Raises ``SigningError``."""
    with tempfile.TemporaryDirectory(prefix="stack-gate-statement-") as folder:
        path = Path(folder) / "predicate.json"
        path.write_text(json.dumps(statement.predicate(), sort_keys=True), encoding="utf-8")
        signing.attest(reference, path, PREDICATE_TYPE, credentials)
    LOGGER.info("attached the %s statement (%s) to %s", statement.kind, PASSED if statement.passed else FAILED,
                reference)


def latest(signer: Signing, reference: str, credentials: Credentials | None, kind: str, *,
           commit: str = "") -> GateStatement | None:
    """The newest ``kind`` statement on ``host/repository@digest`` that ``signer`` signed, if any: a gate run
    again (a flaky GPU test, say) counts as its last run said, so a later failure is not hidden by an older
    pass. (Whoever can write the registry can still drop the newer layers of cosign's attestation tag; a
    transparency log, keyless, keeps the record of every statement made.)"""
    digest = reference.rpartition("@")[2]
    found = [s for s in (GateStatement.parse(raw, digest, kind)
                         for raw in signer.statements(reference, PREDICATE_TYPE, credentials, commit=commit))
             if s is not None]
    return max(found, key=lambda s: (s.recorded, not s.passed), default=None)  # a tie: the failure counts


def signer(signing: Signing, workflow: str) -> Signing:
    """Whose gate statements are believed when the gate runs in its own ``workflow`` (a file under
    .github/workflows): keyless, with the identity the tool builds (``STACK_SIGNING_REPOSITORY``), that
    workflow on the trusted ref, and no other workflow nor ref; the build's workflow on main is not believed
    for a gate it never runs. A key signs every job's statements alike, and an identity given outright
    (``STACK_SIGNING_IDENTITY``) must match every workflow that signs: both are kept as they are."""
    if not signing.keyless or not signing.any_ref_identity:
        return signing
    wanted = SigningSettings.from_env(signing.environment)
    # Beside the build's workflow: in this repository, or (called from a stack) in the tool's at the same ref.
    identity, _ = keyless_identities(replace(wanted, workflow=sibling_workflow(wanted.workflow, workflow)))
    return replace(signing, identity=identity, any_ref_identity="")
