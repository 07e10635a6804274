"""One plan: `plan`, a local `build` and a CI job's `build --image X --platform P` agree, on a real registry.

Also the spec keys that act on the engine (prepull, prune) and the container timeout, for real.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import git
import pytest

from stacks import STACK_BUILDER, MakeStack, Stack, registry_digest, small_stack

pytestmark = pytest.mark.integration


def planned(stack: Stack, *args: str) -> dict[str, object]:
    result = stack.doit("plan", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, object] = json.loads((stack.root / "artifacts" / "plan.json").read_text())
    return data


def test_ci_job_and_local_build_execute_the_same_plan(make_stack: MakeStack, tmp_path: Path, registry: str,
                                                      test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="oneplan")
    # Empty registry: naming the leaf (as a CI job does) plans its missing ancestors too.
    plan = planned(stack, "--image", "leaf")
    assert plan["images"] == ["root", "left", "leaf"]
    assert plan["reasons"] == {"root": "needed: parent of left, not found for linux/amd64",
                               "left": "needed: parent of leaf, not found for linux/amd64",
                               "leaf": "forced (--image)"}
    job = stack.doit("build", "--image", "leaf", "--platform", "linux/amd64")
    assert job.returncode == 0, job.stdout + job.stderr
    assert stack.lines("IMAGES_CHANGED") == plan["images"]
    assert {n for n, r in stack.report()["images"].items() if r["status"] == "built"} == {"root", "left", "leaf"}
    right = stack.doit("build", "--image", "right")  # else `right` is planned too: the registry lacks it
    assert right.returncode == 0, right.stdout + right.stderr

    # Now a change to the leaf alone, on a branch: change detection plans the leaf, its parent from the registry.
    git.Repo.clone_from(stack.root, tmp_path / "clone")
    clone = Stack(tmp_path / "clone", registry)
    clone.repo.git.checkout("-b", "work")
    clone.write("images/leaf/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo leaf > /leaf.txt\n"
                                          "RUN echo again > /again.txt\n")
    clone.commit("leaf changed")
    plan = planned(clone)
    left = registry_digest(registry, "oneplan/left", "2024.1-main")
    assert plan["images"] == ["leaf"]
    assert plan["parents"] == {"leaf": {"image": "left", "from": {"linux/amd64": {
        "ref": f"{registry}/oneplan/left@{left}", "tag": "2024.1-main", "source": "registry tag 2024.1-main"}}}}
    for args in (("build", "--image", "leaf", "--platform", "linux/amd64"), ("build",)):
        result = clone.doit(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert clone.lines("IMAGES_CHANGED") == plan["images"], args
        assert clone.report()["images"]["leaf"]["parent"] == f"{registry}/oneplan/left@{left}"


def edited_small_stack(stack: Stack, base: str, *, namespace: str, old: str, new: str) -> None:
    """The small stack with one edit to its spec, committed; the edit must apply."""
    small_stack(stack, base, namespace=namespace)
    spec = stack.root / "spec.yml"
    text = spec.read_text()
    assert old in text, f"{old!r} is not in the small stack's spec"
    spec.write_text(text.replace(old, new, 1))
    stack.commit(f"spec: {new.strip()}")


def test_a_hanging_info_command_is_stopped_and_its_container_removed(make_stack: MakeStack, registry: str,
                                                                     test_base: str,
                                                                     engine: docker.DockerClient) -> None:
    stack = make_stack(registry=registry)
    edited_small_stack(stack, test_base, namespace="hang", old="command: uname -a", new="command: sleep 3600")
    # A build that waited for the info command would run into this subprocess timeout and fail the test.
    result = stack.doit("build", "--image", "root", env={"STACK_CONTAINER_TIMEOUT_S": "5"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr  # the image is published; the manifest warns
    root = stack.report()["images"]["root"]
    assert root["status"] == "built" and root["manifest"] is None
    log = (stack.root / "artifacts" / "logs" / "root.log").read_text()
    assert "the info commands of" in log and "timed out after 5 s" in log
    left_over = engine.containers.list(all=True, filters={"ancestor": root["image_id"]})
    assert left_over == [], [c.name for c in left_over]


def test_prune_removes_local_copies_after_the_push(make_stack: MakeStack, registry: str, test_base: str,
                                                  engine: docker.DockerClient) -> None:
    stack = make_stack(registry=registry)
    edited_small_stack(stack, test_base, namespace="prune", old="  right:\n", new="  right:\n    prune: true\n")
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    images = stack.report()["images"]
    right, left = images["right"], images["left"]
    assert registry_digest(registry, "prune/right", "2024.1-main") == right["digest"]
    for tag in right["tags"]:
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(f"{registry}/prune/right:{tag}")
    engine.images.get(f"{registry}/prune/left:2024.1-main")  # not pruned: prune is per image
    assert "== prune: removed" in (stack.root / "artifacts" / "logs" / "right.log").read_text()
    assert left["status"] == "built"


@pytest.mark.parametrize("prepull", [True, False])
def test_prepull_fetches_the_parent_before_the_build(make_stack: MakeStack, registry: str, test_base: str,
                                                     engine: docker.DockerClient, prepull: bool) -> None:
    stack = make_stack(registry=registry)
    namespace = f"prepull-{str(prepull).lower()}"
    edited_small_stack(stack, test_base, namespace=namespace, old="depend_on: root\n",
                       new=f"depend_on: root\n    prepull: {str(prepull).lower()}\n")
    assert stack.doit("build", "--image", "root").returncode == 0
    root = stack.report()["images"]["root"]
    engine.images.remove(root["image_id"], force=True)  # the parent is now only in the registry
    result = stack.doit("build", "--image", "left")
    assert result.returncode == 0, result.stdout + result.stderr
    log = (stack.root / "artifacts" / "logs" / "left.log").read_text()
    ref = f"{registry}/{namespace}/root@{root['digest']}"
    assert stack.report()["images"]["left"]["parent"] == ref
    assert (f"== prepull {ref}\n" in log) is prepull
    # prepull put the parent into the engine's image store; without it BuildKit fetched it into its own cache.
    try:
        engine.images.get(ref)
        in_engine = True
    except docker.errors.ImageNotFound:
        in_engine = False
    assert in_engine is prepull


def test_stack_builder_command_lists_and_helps(tmp_path: Path) -> None:
    listing = subprocess.run([str(STACK_BUILDER), "list"], cwd=tmp_path, capture_output=True, text=True, check=True)
    from stack_builder.apps import doit_tasks

    declared = sorted(name.removeprefix("task_") for name in dir(doit_tasks) if name.startswith("task_"))
    assert {"build", "gc", "init", "manifest", "merge", "plan", "precalc", "sbom", "tag", "test_gpu", "tree",
            "wiki", "yank"} <= set(declared)
    assert [line.split()[0] for line in listing.stdout.splitlines()] == declared
    helped = subprocess.run([str(STACK_BUILDER), "help", "build"], cwd=tmp_path, capture_output=True, text=True,
                            check=True)
    assert "--no-push" in helped.stdout and "--platform" in helped.stdout
