"""Model images on the real engine: the functional check and the drift check against stable.

The models are tiny awk programs in busybox images, so every check runs for real in containers
in a second or two. Each test's stack is its own git repository pushing to the tests' registry.
"""
from __future__ import annotations

import random

import pytest

from stack_builder.registry.client import RegistryClient
from stacks import MakeStack, Stack, registry_digest

pytestmark = pytest.mark.integration

# id,x -> id,score,label ; score is 2x, label says whether x is over 5.
GOOD = """NR==1 { print "id,score,label"; next } { printf "%s,%s,%s\\n", $1, $2 * 2, ($2 > 5 ? "big" : "small") }"""
INPUT = "id,x\n1,3\n2,7\n3,1\n4,9\n5,5\n"
OUTPUT = "id,score,label\n1,6,small\n2,14,big\n3,2,small\n4,18,big\n5,10,small\n"


def model_stack(stack: Stack, base: str, program: str, *, namespace: str, sort_output: bool = False) -> None:
    stack.write("spec.yml", f"""\
        images:
          scorer:
            image_name: ghcr.io/{namespace}/scorer
            model:
              columns: {{id: integer, score: float, label: string}}
              fixed: true
              tolerance: 0.1
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    # Sorting the rows by score (keeping the header first) loses the input order.
    header = ' | (read h; echo "$h"; sort -t, -k2 -rn)' if sort_output else ""
    stack.write("images/scorer/predict", f"#!/bin/sh\nawk -F, '{program}' \"$1\"{header} > \"$2\"\n")
    stack.write("images/scorer/Dockerfile",
                f"FROM {base}\nCOPY predict /bin/predict\nRUN chmod 755 /bin/predict\nENTRYPOINT [\"/bin/predict\"]\n")
    stack.write("images/scorer/examples/input.csv", INPUT)
    stack.write("images/scorer/examples/output.csv", OUTPUT)
    rng = random.Random(7)
    pool = "id,x\n" + "".join(f"{i},{rng.uniform(0, 200):.2f}\n" for i in range(1000))
    stack.write("images/scorer/examples/reference.csv", pool)
    stack.commit("model")


def test_good_model_passes_every_check(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    model_stack(stack, test_base, GOOD, namespace="model-good")
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    scorer = stack.report()["images"]["scorer"]
    checks = scorer["model"]["functional"]["checks"]
    assert checks == {"columns": True, "row_count": True, "not_all_null": True, "types": True,
                      "matches_reference": True, "two_runs_agree": True, "order_kept": True}
    assert scorer["model"]["drift"]["status"] == "no baseline" and scorer["model"]["drift"]["passed"]
    assert scorer["model"]["digest"] == scorer["digest"]


@pytest.mark.parametrize("variant,failing", [
    ("wrong_column", "columns"),
    ("nulls", "not_all_null"),
    ("reordered", "order_kept"),
])
def test_broken_model_fails_the_functional_check_and_is_not_pushed(make_stack: MakeStack, registry: str, test_base: str,
                                                                     variant: str, failing: str) -> None:
    stack = make_stack(registry=registry)
    namespace = f"model-{variant.replace('_', '-')}"
    if variant == "reordered":
        model_stack(stack, test_base, GOOD, namespace=namespace, sort_output=True)
    else:
        program = GOOD.replace('"id,score,label"', '"id,scor,label"') if variant == "wrong_column" else \
            GOOD.replace("$2 * 2", '"nan"')
        model_stack(stack, test_base, program, namespace=namespace)
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    scorer = stack.report()["images"]["scorer"]
    assert scorer["status"] == "failed"
    functional = scorer["model"]["functional"]
    assert functional["passed"] is False and functional["checks"][failing] is False, functional
    assert f"functional.{failing}" in scorer["reason"]
    assert scorer["tests"]["failed"] == 0  # the image's tests were fine; the model check stopped it
    assert registry_digest(registry, f"{namespace}/scorer", "2024.1-main") is None


def promote(registry: str, repository: str, source: str, target: str) -> str:
    client = RegistryClient(registry)
    manifest = client.get_manifest(repository, source)
    assert manifest is not None
    return client.put_manifest(repository, target, manifest.body, manifest.media_type)


def test_drift_against_stable(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    model_stack(stack, test_base, GOOD, namespace="model-drift")
    assert stack.doit("build", "--all").returncode == 0
    stable_digest = promote(registry, "model-drift/scorer", "2024.1-main", "2024.1-stable")

    # A rebuild that predicts the same passes, compared on n = 922 sampled inputs.
    dockerfile = stack.root / "images" / "scorer" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "LABEL rebuilt=yes\n")
    stack.commit("same predictions")
    result = stack.doit("build", "--base-ref", "HEAD~1")
    assert result.returncode == 0, result.stdout + result.stderr
    drift = stack.report()["images"]["scorer"]["model"]["drift"]
    assert drift["status"] == "compared" and drift["passed"]
    assert (drift["n"], drift["epsilon"], drift["delta"]) == (922, 0.05, 0.01)
    assert drift["observed_rate"] == 0.0 and drift["baseline_digest"] == stable_digest
    assert drift["baseline_tag"] == "2024.1-stable"

    # A model that changes its answers only outside the examples passes the functional check
    # but disagrees with stable on about half the pool: the drift check stops it.
    drifting = GOOD.replace("$2 * 2", "($2 > 100 ? $2 * 3 : $2 * 2)")
    stack.write("images/scorer/predict", f"#!/bin/sh\nawk -F, '{drifting}' \"$1\" > \"$2\"\n")
    stack.commit("drift")
    result = stack.doit("build", "--base-ref", "HEAD~1")
    assert result.returncode != 0
    scorer = stack.report()["images"]["scorer"]
    assert scorer["model"]["functional"]["passed"]
    drift = scorer["model"]["drift"]
    assert drift["passed"] is False and drift["observed_rate"] > 0.3
    assert drift["baseline_digest"] == stable_digest and drift["candidate"].startswith("sha256:")
    assert "drift (disagreement" in scorer["reason"]
    # The drifting build was not published; the branch tag still holds the good build.
    assert registry_digest(registry, "model-drift/scorer", "2024.1-main") != scorer.get("digest")


def test_a_changed_reference_output_that_dockerignore_hides_is_checked_again(make_stack: MakeStack,
                                                                               empty_registry: str,
                                                                               test_base: str) -> None:
    """The examples are not in the image (.dockerignore leaves them out), but the model check reads them: a changed
    reference output builds and checks the image again, and a wrong one now fails it, rather than being reused."""
    stack = make_stack(registry=empty_registry)
    model_stack(stack, test_base, GOOD, namespace="model-hidden")
    stack.write("images/scorer/.dockerignore", "examples/\n")
    stack.commit("examples are not sent to the engine")
    first = stack.doit("build", "--all")
    assert first.returncode == 0, first.stdout + first.stderr
    assert stack.report()["images"]["scorer"]["status"] == "built"
    stack.write("images/scorer/examples/output.csv", OUTPUT.replace("1,6,small", "1,60,small"))
    stack.commit("a wrong reference output")
    again = stack.doit("build", "--all")
    scorer = stack.report()["images"]["scorer"]
    assert again.returncode != 0 and scorer["status"] == "failed", scorer["status"]  # checked, not reused
    assert scorer["model"]["functional"]["checks"]["matches_reference"] is False
