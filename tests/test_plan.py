"""The plan, computed once: missing parents join it whatever selected the child; platforms; levels."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from stack_builder.errors import StackError
from stack_builder.kinds import Reason, ReasonKind
from stack_builder.plan.changes import Selection
from stack_builder.plan.plan import ParentRef, Plan, make_plan
from stack_builder.plan.tree import StackTree
from stack_builder.spec.stack_spec import Spec, parse_spec

SPEC = """\
images:
  root: {image_name: o/root, platforms: [linux/amd64, linux/arm64]}
  mid: {image_name: o/mid, depend_on: root, platforms: [linux/amd64, linux/arm64]}
  leaf: {image_name: o/leaf, depend_on: mid}
  side: {image_name: o/side, depend_on: root}
tag: {prefix: "2024.2"}
"""


def spec(tmp_path: Path) -> Spec:
    return parse_spec(SPEC, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)


Asked = list[tuple[str, str]]


def finder(available: dict[tuple[str, str], str]) -> tuple[Callable[[str, str], ParentRef | None], Asked]:
    asked: Asked = []

    def find(parent: str, platform: str) -> ParentRef | None:
        asked.append((parent, platform))
        ref = available.get((parent, platform))
        return ParentRef(ref, "2024.2-main", "registry tag 2024.2-main") if ref else None

    return find, asked


def plan_for(tmp_path: Path, reasons: dict[str, str], available: dict[tuple[str, str], str],
             **kwargs: str) -> tuple[Plan, Asked]:
    s = spec(tmp_path)
    find, asked = finder(available)
    plan = make_plan(s, StackTree(s), Selection({n: Reason(ReasonKind.CHANGED, r) for n, r in reasons.items()},
                                                base_source="test"), tag="2024.2-main", commit_tag=None,
                     commit="c" * 40, find_parent=find, **kwargs)
    return plan, asked


def test_a_parent_found_nowhere_joins_the_plan_with_its_own_parent(tmp_path: Path) -> None:
    plan, _ = plan_for(tmp_path, {"leaf": "forced (--image)"}, {})
    assert plan.images == ("root", "mid", "leaf")
    assert plan.reasons["mid"].text == "needed: parent of leaf, not found for linux/amd64"
    assert plan.reasons["root"].text.startswith("needed: parent of mid")
    assert plan.reasons["mid"].kind is ReasonKind.NEEDED_PARENT
    assert plan.parents == {}
    # CI waves: linux/amd64 first; an image's arm64 job waits for its amd64 one, and for its parent's arm64.
    assert [[(j.image, j.platform) for j in level] for level in plan.levels] == [
        [("root", "linux/amd64")], [("root", "linux/arm64"), ("mid", "linux/amd64")],
        [("mid", "linux/arm64"), ("leaf", "linux/amd64")]]


def test_a_parent_found_in_the_registry_is_used_by_digest(tmp_path: Path) -> None:
    plan, asked = plan_for(tmp_path, {"leaf": "changed: images/leaf/Dockerfile"},
                           {("mid", "linux/amd64"): "r/o/mid@sha256:1"})
    assert plan.images == ("leaf",) and asked == [("mid", "linux/amd64")]
    assert plan.parents == {("leaf", "linux/amd64"): ParentRef(
        "r/o/mid@sha256:1", "2024.2-main", "registry tag 2024.2-main")}


def test_a_parent_without_the_ci_platform_is_not_added_for_it(tmp_path: Path) -> None:
    # p is amd64 only; its child c also wants arm64. An arm64 slice must not plan p, which has nothing to build.
    text = ("images:\n  p: {image_name: o/p}\n"
            "  c: {image_name: o/c, depend_on: p, platforms: [linux/amd64, linux/arm64]}\ntag: {prefix: '2024.2'}\n")
    s = parse_spec(text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    find, asked = finder({})
    plan = make_plan(s, StackTree(s), Selection({"c": Reason(ReasonKind.BY_HAND, "forced (--image)")}, base_source="test"), tag="2024.2-main",
                     commit_tag=None, commit="c" * 40, find_parent=find, platform="linux/arm64")
    assert asked == [("p", "linux/arm64")]
    assert plan.images == ("c",) and plan.platforms == {"c": ("linux/arm64",)} and plan.parents == {}
    # Without the slice, p is missing for amd64, which it declares: then it joins.
    plan = make_plan(s, StackTree(s), Selection({"c": Reason(ReasonKind.BY_HAND, "forced (--image)")}, base_source="test"), tag="2024.2-main",
                     commit_tag=None, commit="c" * 40, find_parent=find)
    assert plan.images == ("p", "c")


def test_a_parent_missing_for_one_platform_is_rebuilt(tmp_path: Path) -> None:
    plan, asked = plan_for(tmp_path, {"mid": "changed"}, {("root", "linux/amd64"): "r/o/root@sha256:2"})
    assert plan.images == ("root", "mid")
    assert ("root", "linux/arm64") in asked
    assert plan.parents == {}  # the parent is rebuilt, so it comes from this run on every platform


def test_a_platform_slice_keeps_only_that_platform(tmp_path: Path) -> None:
    plan, asked = plan_for(tmp_path, {"mid": "forced (--image)"}, {("root", "linux/arm64"): "r/o/root@sha256:3"},
                           platform="linux/arm64")
    assert plan.images == ("mid",) and plan.platforms == {"mid": ("linux/arm64",)}
    assert asked == [("root", "linux/arm64")]
    assert plan.as_json()["parents"] == {"mid": {"image": "root", "from": {"linux/arm64": {
        "ref": "r/o/root@sha256:3", "tag": "2024.2-main", "source": "registry tag 2024.2-main"}}}}
    with pytest.raises(StackError, match="none of leaf declares it"):
        plan_for(tmp_path, {"leaf": "forced (--image)"}, {}, platform="linux/arm64")
    with pytest.raises(StackError, match="is not OS/ARCH"):
        plan_for(tmp_path, {"leaf": "forced (--image)"}, {}, platform="arm64")


def test_the_json_names_every_image_with_its_parent(tmp_path: Path) -> None:
    plan, _ = plan_for(tmp_path, {"root": "forced (--all)", "side": "forced (--all)"}, {})
    data = plan.as_json()
    assert data["images"] == ["root", "side"]
    assert data["parents"]["side"] == {"image": "root", "from": {"linux/amd64": "this run"}}
    assert data["parents"]["root"]["image"] is None
    assert data["levels"][1] == [{"image": "root", "platform": "linux/arm64", "runner": "ubuntu-24.04-arm"},
                                 {"image": "side", "platform": "linux/amd64", "runner": "ubuntu-latest"}]
