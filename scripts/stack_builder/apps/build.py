"""`build`: build, test, then push the planned images, parents first."""
from __future__ import annotations

from doit.exceptions import TaskFailed

from stack_builder.apps.runtime import run_task
from stack_builder.config import make_config
from stack_builder.pipeline.planning import SelectionOptions
from stack_builder.pipeline.stack_build import BuildOptions, build
from stack_builder.spec.stack_spec import check_timeouts


def main(base_ref: str, all_images: bool, image: list[str], workers: int, registry: str, no_push: bool,
         no_reuse: bool, test_timeout: int, model_timeout: int, info_timeout: int,
         platform: str) -> bool | TaskFailed:
    def work() -> bool:
        config = make_config(registry=registry)
        options = BuildOptions(selection=SelectionOptions(base_ref=base_ref, all_images=all_images,
                                                          images=tuple(image), platform=platform),
                               workers=workers, push=not no_push, reuse=not no_reuse,
                               timeouts=check_timeouts({"tests": test_timeout, "model": model_timeout,
                                                        "info_cmds": info_timeout}))
        report = build(config, options)
        print(report.table())
        return not report.failed()

    return run_task(work)
