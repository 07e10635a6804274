"""`tree`: the stack as a tree, marking what would be built and why (no registry is asked)."""
from __future__ import annotations

from doit.exceptions import TaskFailed

from stack_builder.apps.runtime import run_task
from stack_builder.config import make_config
from stack_builder.pipeline import planning


def main(base_ref: str, all_images: bool, image: list[str]) -> bool | TaskFailed:
    def work() -> bool:
        config = make_config(uses_registry=False)
        selected = planning.select(config, planning.SelectionOptions(base_ref=base_ref, all_images=all_images,
                                                                     images=tuple(image)))
        selection = selected.selection
        marks = {n: f"[build: {r}]" for n, r in selection.reasons.items()}
        for name in selected.spec.images:
            marks.setdefault(name, "[unchanged]")
        print(selected.tree.render(marks))
        base = f" {selection.base[:12]}" if selection.base else ""
        print(f"\n{len(selection.reasons)} of {len(selected.spec.images)} images would be built "
              f"(base: {selection.base_source}{base})")
        return True

    return run_task(work)
