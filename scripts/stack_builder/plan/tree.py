"""The stack as an anytree forest: order, descendants and a printable picture."""
from __future__ import annotations

from typing import Mapping

from anytree import LevelOrderGroupIter, Node, PreOrderIter, RenderTree

from stack_builder.spec.stack_spec import Spec

STACK = "(stack)"


class StackTree:
    """All images under one invisible root, so several roots are one tree."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.top = Node(STACK)
        # Attaching in spec order keeps siblings in the order the spec declares them.
        self.nodes: dict[str, Node] = {name: Node(name) for name in spec.images}
        for name, image in spec.images.items():
            self.nodes[name].parent = self.nodes[image.parent] if image.parent else self.top

    def levels(self) -> list[list[str]]:
        """Images level by level, roots first (breadth-first)."""
        groups = [[node.name for node in group] for group in LevelOrderGroupIter(self.top)]
        return [g for g in groups[1:] if g]

    def breadth_first(self) -> list[str]:
        return [name for level in self.levels() for name in level]

    def descendants(self, name: str) -> list[str]:
        return [node.name for node in PreOrderIter(self.nodes[name]) if node.name != name]

    def render(self, marks: Mapping[str, str] | None = None) -> str:
        """The tree as text; ``marks`` adds a note after an image's name."""
        marks = marks or {}
        width = max((len(pre) + len(node.name) for pre, _, node in RenderTree(self.top)), default=0)
        lines = []
        for pre, _, node in RenderTree(self.top):
            if node is self.top:
                continue
            # The invisible root adds one level of indentation; drop it.
            label = f"{pre[4:]}{node.name}"
            mark = marks.get(node.name, "")
            lines.append(f"{label:<{width}}  {mark}".rstrip())
        return "\n".join(lines)
