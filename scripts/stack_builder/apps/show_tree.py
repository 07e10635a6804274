"""`tree`: the stack as a tree, marking what would be built and why (changes, and what the registry lacks)."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.pipeline import planning


def main(base_ref: str, all_images: bool, image: list[str], registry: str,
         refresh_base: bool = False) -> bool | Failed:
    def work() -> bool:
        config = make_config(registry=registry)
        selected = planning.select(config, planning.SelectionOptions(base_ref=base_ref, all_images=all_images,
                                                                     images=tuple(image), refresh_base=refresh_base))
        client = config.registry_client()
        everything = len(selected.selection.reasons) == len(selected.spec.images)
        lookups = None if selected.selection.by_hand or everything else planning.reach(
            client, patient=False, consequence="images it lacks are not marked")
        engine = planning.try_engine() if refresh_base else None  # where a root's base may be
        selection = planning.complete(config, selected, lookups, engine)
        marks = {n: f"[build: {r}]" for n, r in selection.reasons.items()}
        for name in selected.spec.images:
            marks.setdefault(name, "[unchanged]")
        print(selected.tree.render(marks))
        base = f" {selection.base[:12]}" if selection.base else ""
        checked = f"; registry {config.registry} checked" if lookups is not None else \
            f"; registry {config.registry} not checked" if not (selection.by_hand or everything) else ""
        print(f"\n{len(selection.reasons)} of {len(selected.spec.images)} images would be built "
              f"(base: {selection.base_source}{base}{checked})")
        return True

    return run_task(work)
