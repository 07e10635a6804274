"""The model hub's builds, on the real engine and registry (issue 16, points 1 to 3).

- `dockerfile:` as a list: a recipe that fails to build, or whose image fails its tests, is recorded with
  its reason and the next is tried; the first to pass is pushed and named in the report, the table and
  the manifest page; all failing fails the image with every reason.
- A multi-platform image builds its native platform first; when that fails, the others are "not
  attempted" and no emulated build starts. In one platform's CI job, a platform waits for the primary
  (linux/amd64) image of the same commit.
- A model image's platforms must agree on its examples; one that disagrees is left out of the index.
"""
from __future__ import annotations

import json

import docker
import pytest

from stack_builder.registry.client import RegistryClient
from stacks import MakeStack, Stack, publish_test_base_index, registry_digest, two_platform_stack

pytestmark = pytest.mark.integration


def recipe_stack(stack: Stack, base: str, recipes: dict[str, str], order: list[str]) -> None:
    listed = ", ".join(f'"{r}"' for r in order)
    stack.write("spec.yml", f"""\
        images:
          hub:
            image_name: ghcr.io/recipes/hub
            dockerfile: [{listed}]
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    for name, body in recipes.items():
        stack.write(f"images/hub/{name}", f"FROM {base}\n{body}\n")
    # The image's test: the recipe must have left /made-by (a recipe that builds without it fails its tests).
    stack.write("images/hub/test/test_hub.py", """\
        def test_made_by_a_recipe(container):
            code, output = container.run(["cat", "/made-by"])
            assert code == 0, "no /made-by in the image"
        """)
    stack.commit("recipes")


def test_a_recipe_that_fails_to_build_or_to_test_falls_through_to_the_next(
        make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    recipe_stack(stack, test_base, {
        "Dockerfile": "RUN echo the first recipe cannot build && false",
        "Dockerfile.untested": "RUN echo built > /elsewhere",  # builds, but its image fails the test
        "Dockerfile.fallback": "RUN echo fallback > /made-by",
    }, ["Dockerfile", "Dockerfile.untested", "Dockerfile.fallback"])
    result = stack.doit("build")
    assert result.returncode == 0, result.stdout + result.stderr
    hub = stack.report()["images"]["hub"]
    assert hub["status"] == "built" and hub["recipe"] == "Dockerfile.fallback"
    assert list(hub["recipes_failed"]) == ["Dockerfile", "Dockerfile.untested"]
    assert hub["recipes_failed"]["Dockerfile"].startswith("build failed: `echo the first recipe cannot build && false`")
    assert "no /made-by in the image" in hub["recipes_failed"]["Dockerfile.untested"]
    assert registry_digest(registry, "recipes/hub", "2024.1-main") == hub["digest"]
    assert "(recipe Dockerfile.fallback, after Dockerfile, Dockerfile.untested failed)" in result.stdout
    page = next((stack.root / "wiki").glob("hub-*.md")).read_text()
    assert "| Recipe | ` Dockerfile.fallback ` (tried before:" in page

    # Every recipe failing fails the image, with each reason; nothing is pushed.
    stack.repo.git.checkout("-b", "broken")
    stack.write("images/hub/Dockerfile.fallback", f"FROM {test_base}\nRUN false\n")
    stack.commit("every recipe broken")
    failed = stack.doit("build")
    assert failed.returncode != 0
    hub = stack.report()["images"]["hub"]
    assert hub["status"] == "failed" and hub["reason"].startswith("every recipe failed: Dockerfile: ")
    assert "Dockerfile.untested: " in hub["reason"] and "Dockerfile.fallback: " in hub["reason"]
    assert registry_digest(registry, "recipes/hub", "2024.1-broken") is None


def test_a_failing_native_platform_never_starts_the_emulated_build(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    # Fails on x86_64 only: were arm64 attempted, it would build and pass.
    two_platform_stack(stack, base, "native-first", extra='RUN test "$(uname -m)" != x86_64\n')
    result = stack.doit("build", "--image", "root")
    assert result.returncode != 0
    root = stack.report()["images"]["root"]
    assert root["status"] == "failed"
    assert root["platforms_failed"]["linux/arm64"] == "not attempted: linux/amd64 failed"
    assert "linux/amd64" in root["platforms_failed"]
    assert not (stack.root / "artifacts" / "logs" / "root-linux-arm64.log").exists()  # never started
    assert registry_digest(registry, "native-first/root", "2024.1-main-linux-arm64") is None


def test_in_ci_a_platform_job_waits_for_the_primary_image_of_its_commit(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, "ci-first")
    commit = stack.repo.head.commit.hexsha[:12]
    # The arm64 job of a commit whose amd64 job published nothing (it failed): not attempted.
    early = stack.doit("build", "--image", "root", "--platform", "linux/arm64")
    assert early.returncode != 0
    assert stack.report()["images"]["root"]["platforms_failed"] == {
        "linux/arm64": "not attempted: linux/amd64 failed"}
    # Once the amd64 job published its image, the arm64 job builds.
    ok = stack.doit("build", "--image", "root", "--platform", "linux/amd64")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert registry_digest(registry, "ci-first/root", f"2024.1-git-{commit}-linux-amd64")
    late = stack.doit("build", "--image", "root", "--platform", "linux/arm64")
    assert late.returncode == 0, late.stdout + late.stderr
    assert registry_digest(registry, "ci-first/root", f"2024.1-git-{commit}-linux-arm64")


def test_plan_puts_each_arm64_job_after_its_amd64_job(make_stack: MakeStack, registry: str,
                                                      engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, "ci-waves")
    result = stack.doit("plan", "--all")
    assert result.returncode == 0, result.stderr
    levels = [[(j["image"], j["platform"]) for j in level] for level in json.loads(result.stdout)["levels"]]
    assert levels == [[("root", "linux/amd64")], [("root", "linux/arm64"), ("child", "linux/amd64")],
                      [("child", "linux/arm64")]]


PREDICT = """#!/bin/sh
# A model whose score depends on the machine it runs on: each platform is within 0.1 of the reference (1.0),
# but they are 0.16 apart: they disagree.
machine="$(uname -m)"
{ echo "species,score"; tail -n +2 "$1" | while IFS=, read -r petal; do
    if [ "$machine" = aarch64 ]; then echo "setosa,1.08"; else echo "setosa,0.92"; fi
  done; } > "$2"
"""


def test_a_platform_whose_model_outputs_disagree_is_left_out_of_the_index(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    stack.write("spec.yml", """\
        images:
          scorer:
            image_name: ghcr.io/agree/scorer
            platforms: [linux/amd64, linux/arm64]
            require_all_platforms: false
            model:
              columns: {species: string, score: float}
              fixed: true
              tolerance: 0.1
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/scorer/Dockerfile", f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n"
                                            "COPY predict /bin/predict\nENTRYPOINT [\"/bin/predict\"]\n")
    (stack.write("images/scorer/predict", PREDICT)).chmod(0o755)
    stack.write("images/scorer/examples/input.csv", "petal\n1.4\n4.7\n")
    stack.write("images/scorer/examples/output.csv", "species,score\nsetosa,1.0\nsetosa,1.0\n")
    stack.commit("a model that disagrees across machines")
    result = stack.doit("build")
    assert result.returncode == 0, result.stdout + result.stderr  # (require_all_platforms: false)
    scorer = stack.report()["images"]["scorer"]
    assert scorer["platforms_built"] == ["linux/amd64"]
    why = scorer["platforms_failed"]["linux/arm64"]
    assert why.startswith("its outputs disagree with linux/amd64's on the examples: 2 of 2 rows differ")
    assert "row 1: setosa,0.92 != setosa,1.08" in why
    assert scorer["example_outputs"] == {"linux/amd64": "species,score\nsetosa,0.92\nsetosa,0.92\n"}
    manifest = RegistryClient(registry).get_manifest("agree/scorer", "2024.1-main")
    assert manifest is not None
    index = json.loads(manifest.body)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64"]
    # The model catalog lists the architectures that agree, and the one left out.
    models = (stack.root / "wiki" / "Models.md").read_text()
    assert "Architectures agreeing: linux/amd64; left out (outputs disagree): linux/arm64." in models
    assert f"| 2024.1-main | ` {scorer['digest']} ` | 0 |" in models
    assert "Last checks (2024.1-main): functional passed, drift no baseline" in models
