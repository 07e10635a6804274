"""Pure logic of issue 15: SBOM documents, content tags, the promotion history, the signing set-up."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack_builder.errors import StackError, StepFailed
from stack_builder.pipeline.attest import content_tags
from stack_builder.release.rollback import target_of
from stack_builder.records import promotions, sbom
from stack_builder.records.runs import RunKind
from stack_builder.registry.signing import Signing
from stack_builder.spec.stack_spec import ModelSpec

DIGEST = "sha256:" + "a" * 64


def test_the_sbom_lists_every_package_with_its_version_and_package_url() -> None:
    document = json.loads(sbom.document(
        {"apt": {"libc6": "2.36-9+deb12u4"}, "pip": {"numpy": "1.26.4"}, "conda": {"python": "3.12.3"}},
        repository="ghcr.io/org/img", digest=DIGEST, platform="linux/arm64"))
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    purls = sorted(c["purl"] for c in document["components"])
    assert purls == ["pkg:conda/python@3.12.3", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64",
                     "pkg:pypi/numpy@1.26.4"]
    subject = document["metadata"]["component"]
    assert subject["type"] == "container" and subject["version"] == DIGEST
    assert {"name": "stack-builder:platform", "value": "linux/arm64"} in subject["properties"]
    # Every package hangs off the image in the dependency graph.
    root = next(d for d in document["dependencies"] if d["ref"] == subject["bom-ref"])
    assert len(root["dependsOn"]) == 3


def _record(*items: tuple[str, str, int]) -> dict[str, object]:
    return {"content_tags": [{"name": n, "command": "cmd", "output": o, "exit_code": c} for n, o, c in items]}


def test_content_tags_fill_the_pattern_behind_the_build_tag() -> None:
    assert content_tags("2026.4-main", _record(("python-{}", "3.12.3\n", 0), ("lab-{}", " 4.2.5 ", 0))) == \
        ["2026.4-main-python-3.12.3", "2026.4-main-lab-4.2.5"]


@pytest.mark.parametrize("output, code, says", [
    ("3.12 beta", 0, "not a valid Docker tag"),
    ("", 0, "must print one line"),
    ("3.12\n3.13", 0, "must print one line"),
    ("x" * 130, 0, "not a valid Docker tag"),
    ("boom", 2, "exited 2"),
    ("linux-amd64", 0, "looks like a tag the builder writes itself"),
])
def test_a_bad_content_tag_is_refused_naming_the_pattern(output: str, code: int, says: str) -> None:
    with pytest.raises(StepFailed) as caught:
        content_tags("2026.4-main", _record(("python-{}", output, code)))
    assert "content tag 'python-{}'" in str(caught.value) and says in str(caught.value)
    assert "nothing was pushed" in str(caught.value)


def _entry(id: str, kind: RunKind = promotions.PROMOTION, undoes: str | None = None) -> promotions.Entry:
    return promotions.Entry(id=id, kind=kind, time="t", by="me", source="s", before=None, after="d", undoes=undoes)


def test_a_rollback_undoes_the_newest_live_promotion_of_its_id() -> None:
    assert promotions.last_live([]) is None
    history = [_entry("a"), _entry("b"), _entry("r1", promotions.ROLLBACK, "b")]
    assert promotions.last_live(history) == _entry("a")
    # The same digests promoted again after the rollback (same id) are live again.
    assert promotions.last_live([*history, _entry("b")]) == _entry("b")
    assert promotions.last_live([*history, _entry("r2", promotions.ROLLBACK, "a")]) is None


def test_rollback_targets() -> None:
    assert target_of("", global_stable=True) == "stable"
    assert target_of("2024.1", global_stable=False) == "2024.1-stable"
    for tag, global_stable in (("2024.1-main", False), ("2024.5", False), ("2024.1", True)):
        with pytest.raises(StackError):
            target_of(tag, global_stable=global_stable)


def test_signing_comes_from_the_environment_with_clear_errors(tmp_path: Path) -> None:
    assert Signing.from_env({}) is None
    key = tmp_path / "cosign.key"
    key.write_text("k")
    signing = Signing.from_env({"STACK_SIGNING_KEY": str(key)})
    assert signing is not None and signing.can_sign and signing.key == key
    verify_only = Signing.from_env({"STACK_SIGNING_PUBKEY": str(key)})
    assert verify_only is not None and not verify_only.can_sign
    with pytest.raises(StackError, match="STACK_SIGNING_KEY=.*is not a file"):
        Signing.from_env({"STACK_SIGNING_KEY": str(tmp_path / "missing.key")})
    with pytest.raises(StackError, match="needs STACK_SIGNING_IDENTITY"):
        Signing.from_env({"STACK_SIGNING": "keyless"})
    with pytest.raises(StackError, match="is not a signing mode"):
        Signing.from_env({"STACK_SIGNING": "yes"})
    with pytest.raises(StackError, match="STACK_SIGNING=key but STACK_SIGNING_KEY is not set"):
        Signing.from_env({"STACK_SIGNING": "key"})  # before: None, so the run went on unsigned
    with pytest.raises(StackError, match="STACK_SIGNING=key but STACK_SIGNING_KEY is not set"):
        Signing.from_env({"STACK_SIGNING": "key", "STACK_SIGNING_PUBKEY": str(key)})
    keyless = Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": r"^https://github\.com/o/r/\.github/workflows/main\.yml@refs/heads/main$"})
    assert keyless is not None and keyless.keyless and keyless.issuer == "https://token.actions.githubusercontent.com"


def test_the_model_catalog_merges_digests_and_coverage_and_replaces_the_rest() -> None:
    from stack_builder.records import catalog
    models = catalog.merged({}, "m", {"digests": {"2024.1-main": "sha256:a"}, "platforms_built": ["linux/amd64"]})
    models = catalog.merged(models, "m", {"digests": {"2024.1-stable": "sha256:a"}, "coverage": {"sha256:a": 10}})
    models = catalog.merged(models, "m", {"digests": {"2024.1-main": "sha256:b"}, "platforms_built": ["x"]})
    assert models["m"]["digests"] == {"2024.1-main": "sha256:b", "2024.1-stable": "sha256:a"}
    assert models["m"]["coverage"] == {"sha256:a": 10} and models["m"]["platforms_built"] == ["x"]


def test_platforms_of_a_fixed_model_must_agree_on_the_examples() -> None:
    from stack_builder.pipeline.agreement import disagreeing
    fixed = ModelSpec(columns=(("score", "float"),), examples=Path("."), fixed=True, tolerance=0.1)
    outputs = {"linux/arm64": "score\n1.08\n1\n", "linux/amd64": "score\n0.92\n1\n", "linux/s390x": "score\n0.95\n1\n"}
    found = disagreeing(fixed, outputs, reference="linux/amd64")
    assert list(found) == ["linux/arm64"]  # 0.16 apart; s390x is 0.03 from the reference
    assert "1 of 2 rows differ; row 1: 0.92 != 1.08" in found["linux/arm64"]
    assert disagreeing(fixed, {"linux/amd64": "score\n1\n", "linux/arm64": "other\n1\n"})["linux/arm64"].startswith(
        "its outputs disagree with linux/amd64's on the examples: columns")
    unfixed = ModelSpec(columns=fixed.columns, examples=Path("."), fixed=False)
    assert disagreeing(unfixed, outputs) == {}  # a model without a reference output is not compared
