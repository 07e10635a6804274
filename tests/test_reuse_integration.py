"""Build what the registry lacks, and never build the same inputs twice (real engine, registry and git).

- A fresh registry: the first plain `build` builds everything ("not in registry"), the next builds nothing.
- A branch builds its changed leaf; after a fast-forward merge, main's build reuses that digest and the
  engine builds nothing.
- The input key: a context file, a build arg or the parent's digest changes it and builds; a
  `.dockerignore`d file does not.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import pytest

from stacks import MakeStack, Stack, free_port, registry_digest, release_port, small_stack

pytestmark = pytest.mark.integration


def statuses(stack: Stack) -> dict[str, str]:
    return {name: r["status"] for name, r in stack.report()["images"].items()}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return str(output)


def image_ids(engine: docker.DockerClient) -> set[str]:
    return {image.id for image in engine.images.list(all=True)}


@pytest.mark.alone  # it compares every image in the engine before and after a build
def test_fresh_registry_builds_everything_then_nothing_then_a_merge_reuses(
        make_stack: MakeStack, empty_registry: str, test_base: str, engine: docker.DockerClient) -> None:
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="fresh")
    stack.write(".gitignore", "artifacts/\n.doit.json*\nwiki/\n")  # CI publishes the wiki elsewhere
    stack.commit("initial")

    tree = ok(stack.doit("tree"))
    assert tree.count(f"not in registry {empty_registry}") == 4, tree
    ok(stack.doit("plan"))
    plan = json.loads((stack.root / "artifacts" / "plan.json").read_text())
    assert plan["reasons"] == {n: f"not in registry {empty_registry}" for n in ("root", "left", "right", "leaf")}

    ok(stack.doit("build"))
    report = stack.report()
    assert statuses(stack) == {"root": "built", "left": "built", "leaf": "built", "right": "built"}
    assert report["images"]["leaf"]["reason"] == f"not in registry {empty_registry}"
    assert report["images"]["leaf"]["input_key"].startswith("sha256:")

    again = ok(stack.doit("build"))
    assert "nothing to build" in again and f"registry {empty_registry} has every image" in again
    assert set(statuses(stack).values()) == {"unchanged"}

    # A branch changes one context file of the leaf: only the leaf is built.
    main_commit = stack.repo.head.commit.hexsha
    stack.repo.git.checkout("-b", "feature")
    stack.write("images/leaf/notes.txt", "a file of the build context\n")
    stack.commit("leaf: notes")
    ok(stack.doit("build"))
    assert statuses(stack) == {"root": "unchanged", "left": "unchanged", "leaf": "built", "right": "unchanged"}
    feature_digest = registry_digest(empty_registry, "fresh/leaf", "2024.1-feature")
    assert feature_digest

    # Fast-forward main onto it: main's build reuses the branch's digest; the engine builds nothing.
    stack.repo.git.checkout("main")
    stack.repo.git.merge("--ff-only", "feature")
    before = image_ids(engine)
    table = ok(stack.doit("build", "--base-ref", main_commit))
    assert image_ids(engine) == before
    leaf = stack.report()["images"]["leaf"]
    assert leaf["status"] == "reused" and leaf["digest"] == feature_digest
    commit_tag = f"2024.1-git-{stack.repo.head.commit.hexsha[:12]}"
    assert leaf["reused_from"] == f"{empty_registry}/fresh/leaf:{commit_tag}"
    assert registry_digest(empty_registry, "fresh/leaf", "2024.1-main") == feature_digest
    assert "reused" in table and commit_tag in table
    assert "== build" not in Path(leaf["log"]).read_text()
    home = (stack.root / "wiki" / "Home.md").read_text()
    assert "leaf:2024.1-main" in home and f"(reused from ` {empty_registry}/fresh/leaf:{commit_tag} `)" in home


def test_what_changes_the_input_key_builds_and_what_does_not_is_reused(
        make_stack: MakeStack, empty_registry: str, test_base: str) -> None:
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="keys")
    stack.write("images/left/.dockerignore", "*.md\n")
    stack.commit("initial")
    ok(stack.doit("build", "--all"))
    first = stack.report()["images"]
    assert set(statuses(stack).values()) == {"built"}

    ok(stack.doit("build", "--all"))  # the same commit again: everything is reused, digests unchanged
    assert set(statuses(stack).values()) == {"reused"}
    assert {n: r["digest"] for n, r in stack.report()["images"].items()} == {n: r["digest"] for n, r in first.items()}

    stack.write("images/left/README.md", "ignored by .dockerignore\n")
    ok(stack.doit("build", "--all"))
    assert statuses(stack)["left"] == "reused"

    stack.write("images/left/data.txt", "sent to the engine\n")
    ok(stack.doit("build", "--all"))
    report = stack.report()["images"]
    # left's context changed; leaf's own inputs did not, but its parent's digest did.
    assert statuses(stack) == {"root": "reused", "left": "built", "leaf": "built", "right": "reused"}
    assert report["leaf"]["input_key"] != first["leaf"]["input_key"]
    assert report["leaf"]["parent"].endswith(report["left"]["digest"])

    spec = (stack.root / "spec.yml").read_text()
    assert "    depend_on: root\n  leaf:" in spec
    (stack.root / "spec.yml").write_text(spec.replace("    depend_on: root\n  leaf:",
                                                      "    depend_on: root\n    build_args: {FLAVOUR: x}\n  leaf:"))
    ok(stack.doit("build", "--all"))
    assert statuses(stack) == {"root": "reused", "left": "built", "leaf": "built", "right": "reused"}

    ok(stack.doit("build", "--all", "--no-reuse"))
    assert set(statuses(stack).values()) == {"built"}


def test_no_push_without_a_registry_skips_the_check_and_says_so(make_stack: MakeStack, test_base: str) -> None:
    port = free_port()  # held closed: nothing answers there
    try:
        stack = make_stack(registry=f"127.0.0.1:{port}")
        small_stack(stack, test_base, namespace="offline")
        stack.commit("initial")
        output = ok(stack.doit("build", "--no-push"))
        tree = ok(stack.doit("tree"))
    finally:
        release_port(port)
    assert f"registry 127.0.0.1:{port} is not running or not reachable" in output
    assert "not checking which images it lacks (--no-push)" in output and "nothing to build" in output
    assert "images it lacks are not marked" in tree and f"registry 127.0.0.1:{port} not checked" in tree
