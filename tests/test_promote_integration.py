"""`doit tag` on the real local registry: gates, dry runs, indexes, failures part way, re-runs.

Only the GPU itself is stood in for: these machines have none, so a passing GPU record is written
through the same gate-record code a GPU host's `stack-builder test_gpu` uses, into the real registry.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from faultproxy import fault_proxy
from stack_builder.records import gates
from stack_builder.release import promote
from stack_builder.errors import StackError
from stack_builder.registry.client import RegistryClient
from stack_builder.spec.stack_spec import load_spec
from stacks import STACK_BUILDER, MakeStack, Stack, push_two_platform_index, registry_digest

pytestmark = pytest.mark.integration

MODEL = """NR==1 { print "id,score"; next } { printf "%s,%s\\n", $1, $2 * 2 }"""


def promo_stack(stack: Stack, base: str, namespace: str) -> None:
    stack.write("spec.yml", f"""\
        images:
          base:
            image_name: ghcr.io/{namespace}/base
          gpu:
            image_name: ghcr.io/{namespace}/gpu
            depend_on: base
            gpu: true
          scorer:
            image_name: ghcr.io/{namespace}/scorer
            depend_on: base
            model:
              columns: {{id: integer, score: float}}
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/base/Dockerfile", f"FROM {base}\nRUN echo base > /base.txt\n")
    stack.write("images/gpu/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo gpu > /gpu.txt\n")
    stack.write("images/gpu/test_gpu/test_gpu.py", """\
        def test_gpu_is_visible(container):
            code, output = container.run(["sh", "-c", "ls /dev/nvidia0"])
            assert code == 0, output
        """)
    stack.write("images/scorer/predict", f"#!/bin/sh\nawk -F, '{MODEL}' \"$1\" > \"$2\"\n")
    stack.write("images/scorer/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY predict /bin/predict\n"
                                            "RUN chmod 755 /bin/predict\nENTRYPOINT [\"/bin/predict\"]\n")
    stack.write("images/scorer/examples/input.csv", "id,x\n1,3\n2,7\n")
    stack.write("images/scorer/examples/output.csv", "id,score\n1,6\n2,14\n")
    stack.commit("promotion stack")


@pytest.fixture
def built(make_stack: MakeStack, registry: str, test_base: str, request: pytest.FixtureRequest) -> Stack:
    stack = make_stack(registry=registry)
    promo_stack(stack, test_base, namespace=request.node.name.replace("_", "-")[:40].strip("-"))
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    return stack


def namespace_of(stack: Stack) -> str:
    return str(stack.report()["images"]["base"]["ref"]).split("/")[1]


def digests(registry: str, stack: Stack, tag: str) -> dict[str, str | None]:
    ns = namespace_of(stack)
    return {name: registry_digest(registry, f"{ns}/{name}", tag) for name in ("base", "gpu", "scorer")}


def record_gpu_pass(registry: str, stack: Stack) -> None:
    """What a GPU host's `stack-builder test_gpu` stores after passing tests (the one stand-in: no GPU here)."""
    gpu = stack.report()["images"]["gpu"]
    gates.write_record(RegistryClient(registry), f"{namespace_of(stack)}/gpu", gpu["digest"], gates.GateRecord(
        gates.GPU, "gpu", passed=True, summary="1 passed, 0 failed", details={"engine": "gpu-host"}))


@pytest.mark.parametrize("args,message", [
    (["--tag", "2024.1"], "must be YYYY.Q-branch"),
    (["--tag", "2024.5-main"], "must be YYYY.Q-branch"),
    (["--tag", "2024.1-main;rm -rf /"], "must be YYYY.Q-branch"),
    (["--tag", "2024.1-stable"], "is already a stable tag"),
    (["--tag", "2024.1-main", "--global-stable"], "with --global-stable must be a quarter YYYY.Q"),
    (["--tag="], "must be YYYY.Q-branch"),  # doit itself crashes on `--tag ""` (its parser); use --tag=
])
def test_malformed_tag_is_refused_and_nothing_happens(make_stack: MakeStack, test_base: str, args: list[str],
                                                      message: str) -> None:
    stack = make_stack(registry="127.0.0.1:1")  # nothing listens: a request would fail differently
    promo_stack(stack, test_base, "malformed")
    result = stack.doit("tag", *args)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (stack.root / "artifacts" / "promotion.json").exists()


def test_gate_refusal_moves_nothing(built: Stack, registry: str) -> None:
    result = built.doit("tag", "--tag", "2024.1-main")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "promotion refused; no tag was moved" in output
    assert "gpu: no GPU test record for sha256:" in output and "stack-builder test_gpu --tag 2024.1-main" in output
    assert digests(registry, built, "2024.1-stable") == {"base": None, "gpu": None, "scorer": None}
    assert json.loads((built.root / "artifacts" / "promotion.json").read_text())["outcome"] == "refused"


def test_the_command_promotes_as_doit_does_without_loading_doit(built: Stack, registry: str) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}, "STACK_REGISTRY": registry}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-X", "importtime", str(STACK_BUILDER), "tag", "--tag", "2024.1-main",
                               *args], cwd=built.root, env=env, capture_output=True, text=True, check=False)

    refused = command()
    assert refused.returncode == 1
    assert "TaskFailed - taskid:tag\nerror: promotion refused; no tag was moved" in refused.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in refused.stderr.splitlines() if line.startswith("import time:")}
    assert "stack_builder.release.promote" in imported and "doit" not in imported
    record_gpu_pass(registry, built)
    moved = command()
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "quarter stable: 3 tags moved, 0 already in place" in moved.stdout
    assert digests(registry, built, "2024.1-stable") == digests(registry, built, "2024.1-main")
    assert [m["state"] for m in json.loads((built.root / "artifacts" / "promotion.json").read_text())["moves"]] == \
        ["moved"] * 3


def test_failed_gpu_tests_block_promotion(built: Stack, registry: str) -> None:
    # This machine has no GPU: the GPU test fails, saying so, and its failure is recorded for the digest.
    result = built.doit("test_gpu", "--tag", "2024.1-main")
    assert result.returncode != 0
    assert "no GPU available" in result.stdout + result.stderr
    stored = json.loads((built.root / "artifacts" / "gates" / "gpu-gpu.json").read_text())
    assert stored["passed"] is False and stored["digest"] == built.report()["images"]["gpu"]["digest"]
    refused = built.doit("tag", "--tag", "2024.1-main")
    assert refused.returncode != 0 and "the GPU tests of sha256:" in refused.stdout + refused.stderr
    assert digests(registry, built, "2024.1-stable")["base"] is None


def test_dry_run_changes_nothing(built: Stack, registry: str) -> None:
    record_gpu_pass(registry, built)
    before = digests(registry, built, "2024.1-stable")
    result = built.doit("tag", "--tag", "2024.1-main", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gpu: passed" in result.stdout and "model: passed (no baseline)" in result.stdout
    assert "nothing was changed" in result.stdout
    assert digests(registry, built, "2024.1-stable") == before == {"base": None, "gpu": None, "scorer": None}
    assert not (built.root / "artifacts" / "promotion.json").exists()
    assert not (built.root / "artifacts" / "IMAGES_TAGGED").exists()


def test_promotion_to_quarter_then_global_stable(built: Stack, registry: str) -> None:
    record_gpu_pass(registry, built)
    source = digests(registry, built, "2024.1-main")
    scorer = source["scorer"]
    assert scorer is not None
    result = built.doit("tag", "--tag", "2024.1-main")
    assert result.returncode == 0, result.stdout + result.stderr
    assert digests(registry, built, "2024.1-stable") == source
    promotion = json.loads((built.root / "artifacts" / "promotion.json").read_text())
    assert promotion["outcome"] == "complete" and promotion["by"]
    assert {m["image"]: m["gates"] for m in promotion["moves"]} == {
        "base": {}, "gpu": {"gpu": "passed"}, "scorer": {"model": "passed (no baseline)"}}
    assert all(m["source_digest"] == m["target_after"] for m in promotion["moves"])
    ns = namespace_of(built)
    assert sorted(built.lines("IMAGES_TAGGED")) == sorted(f"{registry}/{ns}/{n}:2024.1-stable" for n in source)
    models = (built.root / "wiki" / "Models.md").read_text()  # the catalog has the model's stable digest too
    assert f"| 2024.1-stable | ` {source['scorer']} ` |" in models and f"| 2024.1-main | ` {source['scorer']} ` |" in models
    home = (built.root / "wiki" / "Home.md").read_text()
    assert "## Promotions" in home and "| 2024.1-main → 2024.1-stable | passed |" in home

    result = built.doit("tag", "--tag", "2024.1", "--global-stable")
    assert result.returncode == 0, result.stdout + result.stderr
    assert digests(registry, built, "stable") == source
    stable_page = (built.root / "wiki" / "Stable_Tag.md").read_text()
    assert "**2024.1**" in stable_page and scorer in stable_page
    # Each image's page, a pull line by digest, and the history of moves of `stable`.
    assert f"` docker pull {registry}/{ns}/scorer@{source['scorer']} `" in stable_page
    assert re.search(r"\| scorer \| \[scorer-2024\.1-git-[0-9a-f]{12}\]\(scorer-2024\.1-git-[0-9a-f]{12}\) \|",
                     stable_page), stable_page
    assert "## History" in stable_page and "| 2024.1 | " in stable_page.split("## History")[1]


def test_skipped_gpu_test_is_recorded(built: Stack, registry: str) -> None:
    result = built.doit("tag", "--tag", "2024.1-main", "--skip-gpu-test")
    assert result.returncode == 0, result.stdout + result.stderr
    promotion = json.loads((built.root / "artifacts" / "promotion.json").read_text())
    assert promotion["skip_gpu_test"] is True
    assert next(m for m in promotion["moves"] if m["image"] == "gpu")["gates"] == {"gpu": "skipped (--skip-gpu-test)"}
    home = (built.root / "wiki" / "Home.md").read_text()
    assert "## Promotions" in home and "| 2024.1-main → 2024.1-stable | GPU test skipped |" in home


def test_model_gate_refuses_a_failed_check(built: Stack, registry: str) -> None:
    record_gpu_pass(registry, built)
    scorer = built.report()["images"]["scorer"]
    gates.write_record(RegistryClient(registry), f"{namespace_of(built)}/scorer", scorer["digest"], gates.GateRecord(
        gates.MODEL, "scorer", passed=False, summary="drift 0.4 > 0.05"))
    result = built.doit("tag", "--tag", "2024.1-main")
    assert result.returncode != 0
    assert "scorer: the model checks of sha256:" in result.stdout + result.stderr
    assert digests(registry, built, "2024.1-stable") == {"base": None, "gpu": None, "scorer": None}


def test_two_platform_index_keeps_both_platforms(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    stack.write("spec.yml", "images:\n  multi: {image_name: ghcr.io/idx/multi}\ntag: {prefix: '2024.1'}\n")
    stack.write("images/multi/Dockerfile", "FROM scratch\n")
    stack.commit()
    digest, platforms = push_two_platform_index(registry, "idx/multi", "2024.1-main")
    result = stack.doit("tag", "--tag", "2024.1-main")
    assert result.returncode == 0, result.stdout + result.stderr
    promoted = RegistryClient(registry).get_manifest("idx/multi", "2024.1-stable")
    assert promoted is not None and promoted.digest == digest
    assert promoted.media_type == "application/vnd.oci.image.index.v1+json"
    listed = [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in json.loads(promoted.body)["manifests"]]
    assert listed == platforms == ["linux/amd64", "linux/arm64"]


def test_failure_part_way_then_rerun_completes(built: Stack, registry: str) -> None:
    record_gpu_pass(registry, built)
    ns = namespace_of(built)
    source = digests(registry, built, "2024.1-main")

    def fail_gpu_retag(method: str, path: str) -> int | None:
        return 500 if method == "PUT" and path == f"/v2/{ns}/gpu/manifests/2024.1-stable" else None

    with fault_proxy(registry, fail_gpu_retag) as (proxy, counts):
        result = built.doit("tag", "--tag", "2024.1-main", "--registry", proxy)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "promotion stopped at gpu" in output
    assert f"moved now: {ns}/base:2024.1-stable" in output
    assert f"not moved: {ns}/gpu:2024.1-stable, {ns}/scorer:2024.1-stable" in output
    assert counts["injected"] >= 1
    promotion = json.loads((built.root / "artifacts" / "promotion.json").read_text())
    assert promotion["outcome"] == "incomplete"
    assert [m["state"] for m in promotion["moves"]] == ["moved", "failed", "not run"]
    assert digests(registry, built, "2024.1-stable") == {"base": source["base"], "gpu": None, "scorer": None}

    rerun = built.doit("tag", "--tag", "2024.1-main")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert digests(registry, built, "2024.1-stable") == source
    states = [m["state"] for m in json.loads((built.root / "artifacts" / "promotion.json").read_text())["moves"]]
    assert states == ["already in place", "moved", "moved"]


def test_source_moved_after_planning_is_refused(built: Stack, registry: str) -> None:
    record_gpu_pass(registry, built)
    client = RegistryClient(registry)
    moves = promote.plan(load_spec(built.root), client, registry, "2024.1-main", global_stable=False,
                         skip_gpu_test=False)
    # Between planning and moving, someone pushes another image under the source tag of `gpu`.
    ns = namespace_of(built)
    other = client.get_manifest(f"{ns}/base", "2024.1-main")
    assert other is not None
    for layer in json.loads(other.body).get("layers", []) + [json.loads(other.body)["config"]]:
        blob = client.get_blob(f"{ns}/base", layer["digest"])
        client.upload_blob(f"{ns}/gpu", blob)
    client.put_manifest(f"{ns}/gpu", "2024.1-main", other.body, other.media_type)
    with pytest.raises(StackError, match="gpu:2024.1-main moved after planning"):
        promote.execute(moves, client)
    assert [m.state for m in moves] == ["moved", "failed", "not run"]
    assert digests(registry, built, "2024.1-stable")["gpu"] is None
