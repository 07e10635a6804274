"""Change detection on real git repositories in temporary folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stack_builder.plan.changes import select
from stack_builder.errors import GitError, StackError
from stack_builder.spec.stack_spec import load_spec
from stack_builder.plan.tree import StackTree

from stacks import MakeStack, Stack

SPEC = """\
images:
  base:
    image_name: o/base
  ds:
    image_name: o/ds
    depend_on: base
    change_ignore: ["*.txt"]
  ml:
    image_name: o/ml
    depend_on: ds
  model:
    image_name: o/model
    depend_on: ds
  other:
    image_name: o/other
tag:
  prefix: "2024.1"
change_ignore: ["*.md"]
all_info_cmds:
  PY: {command: python --version}
"""
NAMES = ("base", "ds", "ml", "model", "other")


@pytest.fixture
def stack(make_stack: MakeStack) -> Stack:
    s = make_stack()
    s.write("spec.yml", SPEC)
    for name in NAMES:
        s.write(f"images/{name}/Dockerfile", f"FROM scratch\nLABEL name={name}\n")
    s.write("README.md", "hello\n")
    s.commit("initial")
    return s


def chosen(stack: Stack, **kwargs: Any) -> dict[str, str]:
    spec = load_spec(stack.root)
    kwargs.setdefault("env", {})
    return {name: reason.text for name, reason in select(spec, StackTree(spec), **kwargs).reasons.items()}


def on_branch(stack: Stack, name: str = "work") -> None:
    stack.repo.git.checkout("-b", name)


def test_nothing_changed_selects_nothing(stack: Stack) -> None:
    assert chosen(stack) == {}


def test_change_selects_image_and_descendants_in_breadth_first_order(stack: Stack) -> None:
    on_branch(stack)
    stack.write("images/ds/requirements.in", "numpy\n")
    stack.commit("ds deps")
    assert chosen(stack) == {
        "ds": "changed: images/ds/requirements.in",
        "ml": "descendant of ds",
        "model": "descendant of ds",
    }


def test_leaf_change_selects_only_the_leaf(stack: Stack) -> None:
    on_branch(stack)
    stack.write("images/ml/Dockerfile", "FROM scratch\nLABEL v=2\n")
    stack.commit("ml")
    assert chosen(stack) == {"ml": "changed: images/ml/Dockerfile"}


def test_uncommitted_and_untracked_changes_count(stack: Stack) -> None:
    stack.write("images/other/Dockerfile", "FROM scratch\nLABEL v=2\n")  # modified, not committed
    stack.write("images/ml/new-file.sh", "echo\n")  # untracked
    assert set(chosen(stack)) == {"other", "ml"}


def test_shared_tests_rebuild_everything(stack: Stack) -> None:
    on_branch(stack)
    stack.write("images/tests_common/test_x.py", "def test_x():\n    pass\n")
    stack.commit("tests")
    reasons = chosen(stack)
    assert list(reasons) == ["base", "other", "ds", "ml", "model"]
    assert all("shared tests changed" in r for r in reasons.values())


def test_spec_entry_change_selects_that_image(stack: Stack) -> None:
    on_branch(stack)
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace("    image_name: o/other\n", "    image_name: o/other\n    gpu: true\n"))
    stack.commit("other is gpu")
    assert chosen(stack) == {"other": "changed: spec.yml entry"}


@pytest.mark.parametrize("old,new", [('prefix: "2024.1"', 'prefix: "2024.2"'),
                                     ("PY: {command: python --version}", "PY: {command: python -V}")])
def test_prefix_or_info_cmds_change_rebuilds_everything(stack: Stack, old: str, new: str) -> None:
    on_branch(stack)
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace(old, new))
    stack.commit("global")
    assert set(chosen(stack)) == set(NAMES)


def test_change_ignore_globs(stack: Stack) -> None:
    on_branch(stack)
    stack.write("README.md", "changed\n")  # top-level ignore
    stack.write("images/base/NOTES.md", "notes\n")  # top-level ignore applies inside images too
    stack.write("images/ds/notes.txt", "x\n")  # ds's own ignore
    stack.commit("docs")
    assert chosen(stack) == {}
    stack.write("images/ml/notes.txt", "x\n")  # *.txt is ignored only for ds
    stack.commit("ml notes")
    assert list(chosen(stack)) == ["ml"]


def test_full_rebuild_in_commit_message(stack: Stack) -> None:
    on_branch(stack)
    stack.write("unrelated.cfg", "x\n")
    stack.commit("Bump everything: FULL REBUILD please")
    reasons = chosen(stack)
    assert set(reasons) == set(NAMES) and all("full rebuild" in r for r in reasons.values())


def test_all_and_image_force(stack: Stack) -> None:
    assert set(chosen(stack, build_all=True)) == set(NAMES)
    assert chosen(stack, images=("model", "base")) == {"base": "forced (--image)", "model": "forced (--image)"}


def test_unknown_image_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(StackError, match=r"'modle' \(did you mean 'model'\?\)"):
        chosen(stack, images=("modle",))


def test_explicit_base_ref(stack: Stack) -> None:
    first = stack.repo.head.commit.hexsha
    stack.write("images/base/x", "1\n")
    stack.commit("base")
    stack.write("images/other/x", "1\n")
    stack.commit("other")
    assert set(chosen(stack, base_ref=first)) == {"base", "ds", "ml", "model", "other"}
    assert set(chosen(stack, base_ref="HEAD~1")) == {"other"}


def test_unknown_base_ref_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(GitError, match="'nope' is not a commit in this repository: fetch it"):
        chosen(stack, base_ref="nope")


def test_default_base_is_merge_base_with_main(stack: Stack) -> None:
    on_branch(stack, "feature")
    stack.write("images/other/x", "1\n")
    stack.commit("feature work")
    stack.repo.git.checkout("main")
    stack.write("images/base/x", "1\n")
    stack.commit("main moved on")
    stack.repo.git.checkout("feature")
    # main's later change to base is not this branch's change.
    assert chosen(stack) == {"other": "changed: images/other/x"}


def test_github_push_uses_the_previous_commit(stack: Stack, tmp_path: Path) -> None:
    before = stack.repo.head.commit.hexsha
    stack.write("images/model/x", "1\n")
    stack.commit("on main")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"before": before}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event)}
    assert chosen(stack, env=env) == {"model": "changed: images/model/x"}


def test_github_pull_request_uses_its_base_branch(stack: Stack) -> None:
    on_branch(stack, "pr")
    stack.write("images/ml/x", "1\n")
    stack.commit("pr change")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main"}
    assert chosen(stack, env=env) == {"ml": "changed: images/ml/x"}
    with pytest.raises(GitError, match="fetch-depth: 0"):
        chosen(stack, env={**env, "GITHUB_BASE_REF": "release"})


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "images" / "a").mkdir(parents=True)
    (tmp_path / "images" / "a" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "spec.yml").write_text("images:\n  a: {image_name: o/a}\ntag: {prefix: '2024.1'}\n")
    spec = load_spec(tmp_path)
    with pytest.raises(GitError, match="not in a git repository"):
        select(spec, StackTree(spec), env={})
    assert set(select(spec, StackTree(spec), build_all=True, env={}).reasons) == {"a"}
