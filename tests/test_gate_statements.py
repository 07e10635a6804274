"""Gate records vouched for by signed statements of the job that ran the gate.

The integration tests are written as the attack, on the real engine, registry and cosign: whoever can push to
the registry writes a passing GPU or model gate record by hand (``gates.write_record``, no statement) for an
image this stack built and signed. With the stack's key configured, `tag` must refuse it and move nothing; with
the statement the gate's own path writes, it promotes.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from stack_builder.records import gates
from stack_builder.registry import gate_statements
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stacks import MakeStack, Stack, cosign_key_pair, registry_digest

PASSWORD = "gate-statements-test"
DIGEST = "sha256:" + "ab" * 32
SAN = "https://github.com/org/stack/.github/workflows/{}@refs/heads/main"
KEYLESS = {"STACK_SIGNING": "keyless", "STACK_SIGNING_REPOSITORY": "org/stack"}


def statement(predicate: dict[str, object], digest: str = DIGEST,
              predicate_type: str = gate_statements.PREDICATE_TYPE) -> bytes:
    """An in-toto statement as cosign makes of a predicate for ``digest``."""
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": predicate_type,
                       "subject": [{"name": "r/x", "digest": {"sha256": digest.removeprefix("sha256:")}}],
                       "predicate": predicate}).encode()


# -- the predicate, and whose statements are believed (no registry) -------------------------------------------

def test_a_gate_statement_round_trips_as_an_in_toto_test_result() -> None:
    record = gates.GateRecord(gates.MODEL, "scorer", True, "functional passed, drift passed", {
        "functional": {"columns": True, "reference": True}, "drift": {"passed": True}}, digest=DIGEST,
        recorded="2026-12-04T10:00:00Z")
    made = gates.statement_of(record)
    predicate = made.predicate()
    assert predicate["result"] == "PASSED" and predicate["failedTests"] == []
    assert predicate["passedTests"] == ["functional.columns", "functional.reference", "drift"]
    assert predicate["configuration"] == [{"name": "stack-builder model-check", "uri": gate_statements.GATE_URI,
                                           "annotations": {"gate": "model-check", "image": "scorer",
                                                           "summary": "functional passed, drift passed",
                                                           "recorded": "2026-12-04T10:00:00Z"}}]
    assert gate_statements.GateStatement.parse(statement(predicate), DIGEST, gates.MODEL) == made


def test_a_failed_gpu_run_says_failed_and_names_its_failures() -> None:
    record = gates.GateRecord(gates.GPU, "gpu", False, "1 passed, 1 failed", {
        "tests": {"passed": 1, "failed": 1, "failures": ["test_gpu.py::test_cuda"]}}, digest=DIGEST)
    predicate = gates.statement_of(record).predicate()
    assert predicate["result"] == "FAILED" and predicate["failedTests"] == ["test_gpu.py::test_cuda"]
    passing = gates.statement_of(gates.GateRecord(gates.GPU, "gpu", True, "3 passed, 0 failed", {}, digest=DIGEST))
    assert passing.predicate()["passedTests"] == [gates.GPU]  # counted, not named: the gate itself


@pytest.mark.parametrize("why, raw, kind", [
    ("another digest", statement(gates.statement_of(gates.GateRecord(gates.GPU, "g", True, "")).predicate(),
                                 digest="sha256:" + "cd" * 32), gates.GPU),
    ("another gate", statement(gates.statement_of(gates.GateRecord(gates.MODEL, "g", True, "")).predicate()),
     gates.GPU),
    ("another predicate type", statement(gates.statement_of(gates.GateRecord(gates.GPU, "g", True, "")).predicate(),
                                         predicate_type="https://slsa.dev/provenance/v1"), gates.GPU),
    ("not our configuration", statement({"result": "PASSED", "configuration": [{"uri": "x", "annotations": {
        "gate": gates.GPU}}]}), gates.GPU),
    ("no verdict", statement({"result": "WARNED", "configuration": [{"uri": gate_statements.GATE_URI,
                                                                   "annotations": {"gate": gates.GPU}}]}), gates.GPU),
    ("not JSON", b"{", gates.GPU),
])
def test_only_a_statement_of_that_gate_for_that_digest_counts(why: str, raw: bytes, kind: str) -> None:
    assert gate_statements.GateStatement.parse(raw, DIGEST, kind) is None, why


def test_the_newest_statement_counts_and_a_tie_counts_as_the_failure() -> None:
    class Stub(Signing):
        def statements(self, reference: str, predicate_type: str, credentials: object, *,
                       commit: str = "") -> list[bytes]:
            return [statement(gates.statement_of(gates.GateRecord(gates.GPU, "g", passed, "", recorded=when))
                              .predicate()) for passed, when in RUNS]

    RUNS = [(True, "2026-01-01T00:00:00Z"), (False, "2026-01-02T00:00:00Z"), (True, "2026-01-02T00:00:00Z")]
    found = gate_statements.latest(Stub(), f"h/r@{DIGEST}", None, gates.GPU)
    assert found is not None and not found.passed and found.recorded == "2026-01-02T00:00:00Z"
    RUNS.append((True, "2026-01-03T00:00:00Z"))
    assert gate_statements.latest(Stub(), f"h/r@{DIGEST}", None, gates.GPU).passed  # type: ignore[union-attr]


def test_keyless_gpu_statements_are_believed_from_stack_gpu_yml_on_main_alone() -> None:
    build = Signing.from_env(KEYLESS)
    assert build is not None
    gpu = gates.signer_for(build, gates.GPU)
    assert re.search(gpu.identity, SAN.format("stack-gpu.yml"))
    wrong = [SAN.format("main.yml"), SAN.format("test_gpu.yml"), SAN.format("stack-build.yml"),
             SAN.format("stack-gpu.yml").replace("main", "feature"), SAN.format("stack-gpu.yml") + "x",
             SAN.format("stack-gpu.yml").replace("org/", "evil/")]
    assert [w for w in wrong if re.search(gpu.identity, w)] == []
    assert not gpu.binds_commits  # never the any-ref fallback, whatever commit
    assert gates.signer_for(build, gates.MODEL) is build  # the build's jobs run the model checks
    outright = Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": "^a$|^b$"})
    assert outright is not None and gates.signer_for(outright, gates.GPU) is outright
    keyed = Signing(key=Path("cosign.key"))
    assert gates.signer_for(keyed, gates.GPU) is keyed



def test_a_stack_calling_the_released_workflows_believes_gpu_statements_of_the_released_stack_gpu_yml() -> None:
    released = "stack-builder/stack-builder/.github/workflows/stack-build.yml@refs/tags/v0.2.0"
    build = Signing.from_env({**KEYLESS, "STACK_SIGNING_WORKFLOW": released})
    assert build is not None
    gpu = gates.signer_for(build, gates.GPU)
    tool = "https://github.com/stack-builder/stack-builder/.github/workflows/{}@refs/tags/v0.2.0"
    assert re.search(gpu.identity, tool.format("stack-gpu.yml"))
    assert not re.search(gpu.identity, tool.format("stack-build.yml"))
    assert not re.search(gpu.identity, tool.format("stack-gpu.yml").replace("v0.2.0", "v0.1.0"))
    assert not re.search(gpu.identity, SAN.format("stack-gpu.yml"))

# -- the attack, on the real registry and cosign ----------------------------------------------------------------

MODEL = """NR==1 { print "id,score"; next } { printf "%s,%s\\n", $1, $2 * 2 }"""


def key_pair(folder: Path) -> tuple[Path, Path]:
    return cosign_key_pair(folder, PASSWORD)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def gate_stack(stack: Stack, base: str, namespace: str, *, model: bool) -> None:
    """base -> gpu (gpu: true), base -> scorer (a model, once ``model``)."""
    checks = "\n    model:\n      columns: {id: integer, score: float}" if model else ""
    stack.write("spec.yml", f"images:\n  base:\n    image_name: ghcr.io/{namespace}/base\n"
                            f"  gpu:\n    image_name: ghcr.io/{namespace}/gpu\n    depend_on: base\n    gpu: true\n"
                            f"  scorer:\n    image_name: ghcr.io/{namespace}/scorer\n    depend_on: base{checks}\n"
                            "tag:\n  prefix: '2024.1'\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/base/Dockerfile", f"FROM {base}\nRUN echo base > /base.txt\n")
    stack.write("images/gpu/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo gpu > /gpu.txt\n")
    stack.write("images/gpu/test_gpu/test_gpu.py", "def test_gpu_is_visible(container):\n"
                                                   "    assert container.run(['ls', '/dev/nvidia0'])[0] == 0\n")
    stack.write("images/scorer/predict", f"#!/bin/sh\nawk -F, '{MODEL}' \"$1\" > \"$2\"\n")
    stack.write("images/scorer/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY predict /bin/predict\n"
                                            "RUN chmod 755 /bin/predict\nENTRYPOINT [\"/bin/predict\"]\n")
    stack.write("images/scorer/examples/input.csv", "id,x\n1,3\n2,7\n")
    stack.write("images/scorer/examples/output.csv", "id,score\n1,6\n2,14\n")
    stack.commit("model checks" if model else "gate stack")


def stable(host: str, namespace: str) -> dict[str, str | None]:
    return {n: registry_digest(host, f"{namespace}/{n}", "2024.1-stable") for n in ("base", "gpu", "scorer")}


def refused(stack: Stack, verify: dict[str, str], host: str, namespace: str) -> str:
    result = stack.doit("tag", "--tag", "2024.1-main", env=verify)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert stable(host, namespace) == {"base": None, "gpu": None, "scorer": None}  # nothing moved
    return output


@pytest.mark.integration
def test_a_gpu_record_written_by_hand_is_refused_and_the_gpu_jobs_statement_promotes(
        make_stack: MakeStack, empty_registry: str, test_base: str, tmp_path: Path) -> None:
    key, pub = key_pair(tmp_path / "stack-keys")
    their_key, _ = key_pair(tmp_path / "attacker-keys")
    signs, verify = {"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": PASSWORD}, {"STACK_SIGNING_PUBKEY": str(pub)}
    stack = make_stack(registry=empty_registry)
    gate_stack(stack, test_base, "gpusig", model=True)
    ok(stack.doit("build", "--all", env=signs))  # built, tested and signed: the scorer's model statement too
    client = RegistryClient(empty_registry)
    digest = str(stack.report()["images"]["gpu"]["digest"])

    def gpu_record(passed: bool, signing: Signing | None = None) -> None:
        gates.write_record(client, "gpusig/gpu", digest, gates.GateRecord(
            gates.GPU, "gpu", passed, "1 passed, 0 failed" if passed else "0 passed, 1 failed",
            {"tests": {"passed": int(passed), "failed": int(not passed), "failures": []}}), signing=signing)

    gpu_record(True)  # the GPU tests never ran: a record written by hand, with write access only
    output = refused(stack, verify, empty_registry, "gpusig")
    assert f"gpu: gpu-test gate record is not vouched for by a statement signed by key {pub}" in output
    assert "scorer: model-check" not in output  # the model's statement, written by the build, vouches for its record

    gpu_record(True, Signing(key=their_key, password=PASSWORD))  # a statement, signed by another key
    assert "gpu-test gate record is not vouched for" in refused(stack, verify, empty_registry, "gpusig")

    gpu_record(False, Signing(key=key, password=PASSWORD))  # a real GPU run failed; then a passing record by hand
    time.sleep(1.1)
    gpu_record(True)
    assert "its newest statement says FAILED: 0 passed, 1 failed" in refused(stack, verify, empty_registry, "gpusig")

    gpu_record(True, Signing(key=key, password=PASSWORD))  # what `test_gpu` writes after passing tests
    ok(stack.doit("tag", "--tag", "2024.1-main", env=verify))
    main = {n: registry_digest(empty_registry, f"gpusig/{n}", "2024.1-main") for n in ("base", "gpu", "scorer")}
    assert stable(empty_registry, "gpusig") == main
    skipped = stack.doit("tag", "--tag", "2024.1-main", "--skip-gpu-test", env=verify)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr  # no GPU gate asked for, none checked


@pytest.mark.integration
def test_a_model_record_written_by_hand_is_refused_and_the_builds_statement_promotes(
        make_stack: MakeStack, empty_registry: str, test_base: str, tmp_path: Path) -> None:
    """The scorer was built and signed before it had a model; its spec now declares one. Its tag still serves the
    digest that never ran the model checks, and someone writes the passing model record for it by hand."""
    key, pub = key_pair(tmp_path / "stack-keys")
    signs, verify = {"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": PASSWORD}, {"STACK_SIGNING_PUBKEY": str(pub)}
    ours = Signing(key=key, password=PASSWORD)
    stack = make_stack(registry=empty_registry)
    gate_stack(stack, test_base, "modelsig", model=False)
    ok(stack.doit("build", "--all", env=signs))
    gate_stack(stack, test_base, "modelsig", model=True)  # committed, not built
    client = RegistryClient(empty_registry)
    scorer = str(registry_digest(empty_registry, "modelsig/scorer", "2024.1-main"))
    gates.write_record(client, "modelsig/scorer", scorer, gates.GateRecord(
        gates.MODEL, "scorer", True, "functional passed, drift no baseline", {"drift_status": "no baseline"}))
    gpu = str(registry_digest(empty_registry, "modelsig/gpu", "2024.1-main"))
    gates.write_record(client, "modelsig/gpu", gpu, gates.GateRecord(gates.GPU, "gpu", True, "1 passed, 0 failed"),
                       signing=ours)
    output = refused(stack, verify, empty_registry, "modelsig")
    assert f"scorer: model-check gate record is not vouched for by a statement signed by key {pub}" in output
    assert "gpu-test gate record" not in output

    ok(stack.doit("build", "--all", env=signs))  # the scorer is built again: its checks run, and are stated
    report = stack.report()["images"]["scorer"]
    assert report["status"] == "built" and report["digest"] != scorer, report
    ok(stack.doit("tag", "--tag", "2024.1-main", env=verify))
    assert stable(empty_registry, "modelsig")["scorer"] == report["digest"]
