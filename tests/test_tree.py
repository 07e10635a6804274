"""The anytree view of the stack: levels, descendants and the printed picture."""
from __future__ import annotations

from pathlib import Path

from stack_builder.spec.stack_spec import parse_spec
from stack_builder.plan.tree import StackTree

SPEC = """\
images:
  leaf: {image_name: o/leaf, depend_on: mid}
  mid: {image_name: o/mid, depend_on: top}
  top: {image_name: o/top}
  other: {image_name: o/other}
  side: {image_name: o/side, depend_on: top}
tag: {prefix: "2024.2"}
"""


def tree(tmp_path: Path) -> StackTree:
    return StackTree(parse_spec(SPEC, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False))


def test_levels_put_parents_before_children_even_when_declared_after(tmp_path: Path) -> None:
    assert tree(tmp_path).levels() == [["top", "other"], ["mid", "side"], ["leaf"]]


def test_descendants(tmp_path: Path) -> None:
    stack = tree(tmp_path)
    assert stack.descendants("top") == ["mid", "leaf", "side"]
    assert stack.descendants("leaf") == []


def test_render_marks(tmp_path: Path) -> None:
    text = tree(tmp_path).render({"mid": "[build: changed]", "leaf": "[build: descendant of mid]"})
    lines = text.splitlines()
    assert lines[0] == "top"
    assert lines[1].startswith("├── mid") and lines[1].endswith("[build: changed]")
    assert lines[2].startswith("│   └── leaf") and lines[2].endswith("[build: descendant of mid]")
    assert lines[3].rstrip() == "└── side"
    assert lines[4] == "other"
