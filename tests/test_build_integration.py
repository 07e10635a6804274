"""`doit build` of small stacks on the real engine, pushing to a real registry.

The stacks live in their own temporary git repositories and are built with
``doit -f <this repo>/dodo.py -d <stack>``: any stack, no copied code.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import git
import pytest

from stacks import DODO, REPO, MakeStack, Stack, registry_digest, small_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: str, test_base: str) -> Stack:
    """The small stack, built once with --all; tests that only read it share it."""
    stack = Stack(tmp_path_factory.mktemp("built") / "stack", registry)
    small_stack(stack, test_base, namespace="shared")
    result = stack.doit("build", "--all", "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    return stack


def test_full_build_builds_tests_and_pushes_in_order(built: Stack, registry: str, engine: docker.DockerClient) -> None:
    report = built.report()
    assert report["tag"] == "2024.1-main"
    assert report["registry"] == registry
    assert report["commit"] == built.repo.head.commit.hexsha
    images = report["images"]
    assert {n: r["status"] for n, r in images.items()} == {n: "built" for n in ("root", "left", "leaf", "right")}
    for name, result in images.items():
        # The digest the registry holds now is the one the build pushed and recorded.
        assert result["ref"] == f"{registry}/shared/{name}:2024.1-main"
        assert registry_digest(registry, f"shared/{name}", "2024.1-main") == result["digest"]
        commit_tag = f"2024.1-git-{report['commit'][:12]}"
        assert registry_digest(registry, f"shared/{name}", commit_tag) == result["digest"]
        assert result["tests"]["passed"] >= 2 and result["tests"]["failed"] == 0
        assert (built.root / "artifacts" / "junit" / f"{name}.xml").is_file()
        assert (built.root / "artifacts" / "logs" / f"{name}.log").read_text().strip()
    # Each child was built FROM its parent's exact pushed digest.
    assert images["root"]["parent"] is None
    assert images["left"]["parent"] == f"{registry}/shared/root@{images['root']['digest']}"
    assert images["leaf"]["parent"] == f"{registry}/shared/left@{images['left']['digest']}"
    labels = engine.images.get(images["leaf"]["ref"]).labels
    assert labels["org.opencontainers.image.revision"] == report["commit"]
    assert labels["org.opencontainers.image.version"] == "2024.1-main"
    assert labels["org.opencontainers.image.created"]
    assert sorted(built.lines("IMAGES_BUILT")) == sorted(r["ref"] for r in images.values())
    assert built.lines("IMAGES_CHANGED") == ["root", "left", "right", "leaf"]


def test_run_with_no_changes_builds_nothing(built: Stack) -> None:
    result = built.doit("build")
    assert result.returncode == 0, result.stderr
    report = built.report()
    assert {r["status"] for r in report["images"].values()} == {"unchanged"}
    assert built.lines("IMAGES_CHANGED") == []
    assert built.lines("IMAGES_BUILT") == []
    assert "nothing to build" in result.stderr


def test_leaf_change_builds_exactly_that_image(built: Stack, tmp_path: Path, registry: str) -> None:
    # Work in a clone so the shared stack stays as it was for other tests.
    git.Repo.clone_from(built.root, tmp_path / "clone")
    clone = Stack(tmp_path / "clone", registry)
    clone.repo.git.checkout("-b", "feature-leaf")
    dockerfile = clone.root / "images" / "leaf" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo changed > /changed.txt\n")
    clone.commit("leaf only")
    parent_digest = registry_digest(registry, "shared/left", "2024.1-main")

    result = clone.doit("tree")
    assert result.returncode == 0, result.stderr
    assert "[build: changed: images/leaf/Dockerfile]" in result.stdout
    assert "1 of 4 images would be built" in result.stdout

    result = clone.doit("build")
    assert result.returncode == 0, result.stdout + result.stderr
    report = clone.report()
    statuses = {n: r["status"] for n, r in report["images"].items()}
    assert statuses == {"root": "unchanged", "left": "unchanged", "right": "unchanged", "leaf": "built"}
    assert clone.lines("IMAGES_CHANGED") == ["leaf"]
    # The unchanged parent came from the registry, by digest; the branch gives a sanitised tag.
    assert report["tag"] == "2024.1-feature-leaf"
    assert report["images"]["leaf"]["parent"] == f"{registry}/shared/left@{parent_digest}"
    assert registry_digest(registry, "shared/leaf", "2024.1-feature-leaf") == report["images"]["leaf"]["digest"]


def test_failure_mid_tree_skips_only_descendants(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="midfail")
    stack.write("images/left/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo broken && exit 3\n")
    stack.commit("break left")
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    images = stack.report()["images"]
    assert images["root"]["status"] == "built"
    assert images["right"]["status"] == "built"
    assert images["left"]["status"] == "failed"
    assert "exited 3" in images["left"]["reason"]
    assert images["leaf"]["status"] == "skipped"
    assert images["leaf"]["reason"] == "ancestor left failed"
    # Nothing failed or skipped reached the registry; the healthy branch did.
    assert registry_digest(registry, "midfail/left", "2024.1-main") is None
    assert registry_digest(registry, "midfail/leaf", "2024.1-main") is None
    assert registry_digest(registry, "midfail/right", "2024.1-main") == images["right"]["digest"]
    assert sorted(stack.lines("IMAGES_BUILT")) == sorted([images["root"]["ref"], images["right"]["ref"]])
    assert "Traceback" not in result.stderr + result.stdout


def test_failing_image_test_blocks_the_push(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="testfail")
    stack.write("images/right/test/test_right.py", """\
        def test_right_is_wrong(container):
            code, output = container.run(["sh", "-c", "cat /right.txt"])
            assert output.strip() == "not right"
        """)
    stack.commit("a failing test")
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    right = stack.report()["images"]["right"]
    assert right["status"] == "failed"
    assert right["tests"]["failed"] == 1
    assert "test_right_is_wrong" in right["reason"]
    assert "AssertionError: assert 'right' == 'not right'" in right["reason"]  # the assertion, from the JUnit file
    assert "AssertionError: assert 'right' == 'not right'" in result.stdout  # and in the summary table
    steps = (stack.root / "artifacts" / "junit" / "right-steps.xml").read_text()
    assert '<testcase classname="right.steps" name="build and tests (linux/amd64)"><failure' in steps
    assert '<testcase classname="right.steps" name="push and read back"><skipped' in steps
    assert registry_digest(registry, "testfail/right", "2024.1-main") is None
    assert stack.report()["images"]["leaf"]["status"] == "built"


def test_no_push_builds_and_tests_only(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="nopush")
    result = stack.doit("build", "--all", "--no-push")
    assert result.returncode == 0, result.stderr
    images = stack.report()["images"]
    assert {r["status"] for r in images.values()} == {"built"}
    assert all(r["digest"] is None for r in images.values())
    # Children still build on their parent's image, here by its local name (BuildKit finds local images by name).
    assert images["left"]["parent"] == f"{registry}/nopush/root:2024.1-main"
    assert registry_digest(registry, "nopush/root", "2024.1-main") is None
    assert stack.lines("IMAGES_BUILT") == []


def test_bad_spec_is_refused_before_anything_happens(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="badspec")
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace("depend_on: left", "depend_on: lefft"))
    stack.commit("typo")
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    assert "spec.yml:10: images.leaf.depend_on: unknown parent 'lefft' (did you mean 'left'?)" in result.stdout + \
        result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (stack.root / "artifacts" / "build-report.json").exists()
    assert registry_digest(registry, "badspec/root", "2024.1-main") is None


def test_doit_list_and_help_describe_every_task_and_parameter() -> None:
    listing = subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(REPO), "list"],
                             capture_output=True, text=True, check=True).stdout
    for task in ("build", "tree"):
        line = next(line for line in listing.splitlines() if line.split()[0] == task)
        assert len(line.split(None, 1)[1]) > 20
    help_text = subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(REPO), "help", "build"],
                               capture_output=True, text=True, check=True).stdout
    for option in ("--base-ref", "--all", "--image", "--workers", "--registry", "--no-push"):
        line = next(line for line in help_text.splitlines() if line.strip().startswith(option))
        assert len(line.strip()) > len(option) + 15, line
