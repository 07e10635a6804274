"""Fresh bases without an engine: a Dockerfile's final base, the comparison of a label with the base now,
and the selection that --refresh-base adds (see test_fresh_bases_integration.py for the real runs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from stack_builder.kinds import Reason, ReasonKind
from stack_builder.pipeline.bases import Base
from stack_builder.pipeline.refresh import BaseCheck, stale_roots
from stack_builder.plan.changes import BASE_UPDATED, Selection, with_refreshed
from stack_builder.plan.tree import StackTree
from stack_builder.spec.dockerfile import final_base
from stack_builder.spec.stack_spec import load_spec


@pytest.mark.parametrize("text, args, expected", [
    ("FROM debian:bookworm-slim\nRUN true\n", None, "debian:bookworm-slim"),
    ("ARG BASE_IMAGE=debian:bookworm\nFROM ${BASE_IMAGE}\n", None, "debian:bookworm"),
    ("ARG BASE_IMAGE=debian:bookworm\nFROM $BASE_IMAGE\n", {"BASE_IMAGE": "ubuntu:24.04"}, "ubuntu:24.04"),
    ("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", None, None),  # a child's: no base until a build names it
    ("FROM golang:1.22 AS build\nRUN go build\nFROM alpine:3.20\nCOPY --from=build /x /x\n", None, "alpine:3.20"),
    ("FROM python:3.12 AS deps\nFROM deps AS final\nFROM final\n", None, "python:3.12"),  # stages followed back
    ("FROM --platform=$BUILDPLATFORM tool:1 AS t\nFROM scratch\nCOPY --from=t /x /x\n", None, None),
    ("FROM a:1\nARG TAG=2\nFROM b:${TAG}\n", None, None),  # an ARG after a FROM does not reach a FROM line
    ("ARG TAG=2\nFROM b:${TAG}\n", {"OTHER": "x"}, "b:2"),
])
def test_final_base_is_the_image_the_last_stage_starts_from(tmp_path: Path, text: str,
                                                            args: dict[str, str] | None, expected: str | None) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    assert final_base(dockerfile, args) == expected


NOW = Base("debian:bookworm-slim", "sha256:" + "b" * 64, "registry docker.io")


@pytest.mark.parametrize("name, digest, moved", [
    ("debian:bookworm-slim", "sha256:" + "b" * 64, False),  # the same base, the same digest
    ("debian:bookworm-slim", "sha256:" + "a" * 64, True),  # the tag moved
    (None, None, True),  # built before images recorded their base
    ("debian:bookworm", "sha256:" + "b" * 64, True),  # another base by name
])
def test_a_base_moved_when_its_label_differs_from_the_base_now(name: str | None, digest: str | None,
                                                               moved: bool) -> None:
    check = BaseCheck("root", "linux/amd64", "2024.1-main", name, digest, NOW)
    assert check.moved is moved
    assert ("no base label" in check.describe()) is (digest is None)


def test_a_root_is_stale_when_any_platform_moved_and_is_named_once() -> None:
    same = BaseCheck("a", "linux/amd64", "t", NOW.name, NOW.digest, NOW)
    checks = [same, BaseCheck("b", "linux/amd64", "t", NOW.name, "sha256:" + "0" * 64, NOW),
              BaseCheck("b", "linux/arm64", "t", None, None, NOW),
              BaseCheck("c", "linux/amd64", "t", NOW.name, NOW.digest, NOW),
              BaseCheck("c", "linux/arm64", "t", None, None, NOW)]
    assert stale_roots(checks) == ["b", "c"]
    assert stale_roots([same]) == []


SPEC = """\
images:
  base:
    image_name: o/base
  ds:
    image_name: o/ds
    depend_on: base
  ml:
    image_name: o/ml
    depend_on: ds
  other:
    image_name: o/other
  tool:
    image_name: o/tool
    depend_on: other
tag:
  prefix: "2024.1"
"""


def test_refreshed_roots_bring_their_descendants_and_keep_other_reasons(tmp_path: Path) -> None:
    (tmp_path / "spec.yml").write_text(SPEC)
    for name in ("base", "ds", "ml", "other", "tool"):
        (tmp_path / "images" / name).mkdir(parents=True)
        (tmp_path / "images" / name / "Dockerfile").write_text("FROM scratch\n")
    spec = load_spec(tmp_path)
    tree = StackTree(spec)
    before = Selection({"ds": Reason(ReasonKind.CHANGED, "changed: images/ds/Dockerfile"),
                        "ml": Reason(ReasonKind.DESCENDANT, "descendant of ds")}, base="abc",
                       base_source="--base-ref main")
    after = with_refreshed(spec, tree, before, ["base", "other", "ds"])  # ds keeps the reason it had
    assert after.reasons["base"].kind is ReasonKind.BASE_UPDATED and after.reasons["ds"].kind is ReasonKind.CHANGED
    assert {n: r.text for n, r in after.reasons.items()} == {"base": BASE_UPDATED, "other": BASE_UPDATED,
                                   "ds": "changed: images/ds/Dockerfile", "ml": "descendant of ds",
                                   "tool": f"descendant of other ({BASE_UPDATED})"}
    assert list(after.reasons) == [n for n in tree.breadth_first() if n in after.reasons]  # parents first
    assert (after.base, after.base_source) == ("abc", "--base-ref main")
    assert with_refreshed(spec, tree, before, []).reasons == before.reasons
    assert dict(with_refreshed(spec, tree, Selection({}), ["ds"]).reasons) == {}  # only a root has a base to refresh
