"""`tag`: promote registry-side through the gates, or roll a stable tag back; plan first, then move every tag
or none."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.release import promote
from stack_builder.release.promotion_run import PromoteOptions, check_options, promote_stack


def main(tag: str, global_stable: bool, dry_run: bool, skip_gpu_test: bool, allow_platform_drop: bool,
         rollback: bool, registry: str) -> bool | Failed:
    def work() -> bool:
        config = make_config(uses_registry=False)
        options = PromoteOptions(tag=tag, global_stable=global_stable, dry_run=dry_run, skip_gpu_test=skip_gpu_test,
                                 allow_platform_drop=allow_platform_drop, rollback=rollback)
        check_options(options)
        result = promote_stack(config.with_registry(registry), options)
        print(promote.table(result.moves))
        if dry_run:
            print(f"\ndry run: the {result.kind} above passes its gates; nothing was changed")
        else:
            print(f"\n{result.kind}: {sum(m.state == promote.MOVED for m in result.moves)} tags moved, "
                  f"{sum(m.state == promote.ALREADY for m in result.moves)} already in place")
        return True

    return run_task(work)
