"""Signed build statements: what a run says of a digest it built and tested, verified before anything trusts it.

A statement is an in-toto statement with a SLSA provenance v1 predicate, attached to the digest by cosign
(``cosign attest``) and signed with the stack's key or keyless identity. It names the digest (its subject),
the commit, the image and platform, the input key, the parents' digests, the tests it passed, its content
tags and a model's example outputs. Reuse, parents, merge and promotion believe a digest only through a
statement that verifies, never through a label, which anyone who can push may write.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stack_builder.registry.credentials import Credentials
from stack_builder.registry.signing import Signing

LOGGER = logging.getLogger(__name__)

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/stack-builder/image-build/v1"  # what the externalParameters below mean
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True)
class BuildStatement:
    """What one run says of one digest it built and tested (a platform image, or an index of them)."""

    digest: str
    image: str
    commit: str
    input_key: str  # the platform's input key ("" for an index)
    platform: str = ""  # "" for an index
    parents: tuple[str, ...] = ()  # the parent's digests (or, for an index, its platform images' digests)
    tests: Mapping[str, int] = field(default_factory=dict)  # passed / failed / skipped
    content_tags: tuple[str, ...] = ()
    example_output: str = ""  # a model platform's output on its examples, for `merge` to compare
    builder: str = ""  # the builder's version

    def predicate(self) -> dict[str, Any]:
        return {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"image": self.image, "commit": self.commit, "platform": self.platform,
                                       "inputKey": self.input_key},
                "resolvedDependencies": [{"digest": {"sha256": d.removeprefix("sha256:")}} for d in self.parents],
            },
            "runDetails": {
                "builder": {"id": "stack-builder", "version": {"stack-builder": self.builder}},
                "byproducts": [
                    {"name": "tests", "annotations": dict(self.tests)},
                    {"name": "content-tags", "annotations": {"tags": list(self.content_tags)}},
                    {"name": "example-output", "annotations": {"csv": self.example_output}},
                ],
            },
        }

    @classmethod
    def parse(cls, statement: bytes, digest: str) -> "BuildStatement | None":
        """The statement, if it is ours and its subject is ``digest``; else None."""
        try:
            data = json.loads(statement)
            subjects = {"sha256:" + str(s["digest"]["sha256"]) for s in data["subject"]}
            if data.get("predicateType") != PREDICATE_TYPE or digest not in subjects:
                return None
            definition, run = data["predicate"]["buildDefinition"], data["predicate"]["runDetails"]
            if definition.get("buildType") != BUILD_TYPE:
                return None
            params = definition["externalParameters"]
            extras = {str(b["name"]): b.get("annotations") or {} for b in run.get("byproducts") or []}
            return cls(digest=digest, image=str(params["image"]), commit=str(params["commit"]),
                       input_key=str(params["inputKey"]), platform=str(params.get("platform") or ""),
                       parents=tuple("sha256:" + str(d["digest"]["sha256"])
                                     for d in definition.get("resolvedDependencies") or []),
                       tests={str(k): int(v) for k, v in (extras.get("tests") or {}).items()},
                       content_tags=tuple(str(t) for t in (extras.get("content-tags") or {}).get("tags") or []),
                       example_output=str((extras.get("example-output") or {}).get("csv") or ""),
                       builder=str((run.get("builder") or {}).get("version", {}).get("stack-builder", "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def attach(signing: Signing, reference: str, statement: BuildStatement, credentials: Credentials | None) -> None:
    """Sign ``statement`` and attach it to ``host/repository@digest``. Raises ``SigningError``."""
    with tempfile.TemporaryDirectory(prefix="stack-statement-") as folder:
        path = Path(folder) / "predicate.json"
        path.write_text(json.dumps(statement.predicate(), sort_keys=True), encoding="utf-8")
        signing.attest(reference, path, PREDICATE_TYPE, credentials)


def verified(signing: Signing, reference: str, credentials: Credentials | None, *,
             commit: str = "") -> list[BuildStatement]:
    """Every statement on ``host/repository@digest`` that this set-up's key or identity signed, about that digest.

    Keyless, a statement signed on the trusted ref (main) serves any commit. With ``commit`` (the run's own),
    failing those, a statement the same workflow signed on any other ref (a branch job) serves too, when its
    certificate names that very commit and it says so itself: a fast-forward merge reuses what its branch
    built, and no branch vouches for any other commit. A key proves no ref nor commit: ``commit`` changes
    nothing there."""
    digest = reference.rpartition("@")[2]
    found = _parsed(signing.statements(reference, PREDICATE_TYPE, credentials), digest)
    if found or not commit or not signing.binds_commits:
        return found
    bound = _parsed(signing.statements(reference, PREDICATE_TYPE, credentials, commit=commit), digest)
    return [s for s in bound if s.commit == commit]


def _parsed(raw: list[bytes], digest: str) -> list[BuildStatement]:
    return [s for s in (BuildStatement.parse(r, digest) for r in raw) if s is not None]


def vouching(statements: list[BuildStatement], *, input_key: str | None = None,
             commit: str | None = None) -> BuildStatement | None:
    """The first statement for ``input_key`` (and ``commit``, when given), if any."""
    for statement in statements:
        if (input_key is None or statement.input_key == input_key) and (commit is None or statement.commit == commit):
            return statement
    return None
