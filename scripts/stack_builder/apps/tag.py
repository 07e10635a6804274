"""`tag`: promote registry-side through the gates; plan first, then move every tag or none."""
from __future__ import annotations

from doit.exceptions import TaskFailed

from stack_builder.apps.runtime import run_task
from stack_builder.config import make_config
from stack_builder.pipeline import promote


def main(tag: str, global_stable: bool, dry_run: bool, skip_gpu_test: bool, allow_platform_drop: bool,
         registry: str) -> bool | TaskFailed:
    def work() -> bool:
        config = make_config(uses_registry=False)
        promote.parse_tag(tag, global_stable=global_stable)  # a malformed tag stops here, before the registry
        result = promote.promote_stack(config.with_registry(registry), promote.PromoteOptions(
            tag=tag, global_stable=global_stable, dry_run=dry_run, skip_gpu_test=skip_gpu_test,
            allow_platform_drop=allow_platform_drop))
        print(promote.table(result.moves))
        if dry_run:
            print(f"\ndry run: the {result.kind} promotion above passes its gates; nothing was changed")
        else:
            print(f"\n{result.kind}: {sum(m.state == promote.MOVED for m in result.moves)} tags moved, "
                  f"{sum(m.state == promote.ALREADY for m in result.moves)} already in place")
        return True

    return run_task(work)
