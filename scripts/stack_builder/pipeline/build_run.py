"""Execute a plan: every (image, platform) job, then each image's publish step, parents first.

The scheduler runs them; this module only says which step needs which. An image's platform jobs
require its parent's publish step; its publish step runs after all of its platform jobs.
"""
from __future__ import annotations

from typing import Callable, Hashable

from stack_builder import signals
from stack_builder.pipeline import image_job, publish
from stack_builder.pipeline.context import BuildContext
from stack_builder.pipeline.scheduler import Step, run_steps
from stack_builder.records.files import utc_now
from stack_builder.records.report import INTERRUPTED, PENDING, SKIPPED, BuildReport, ImageResult


def execute(ctx: BuildContext, *, workers: int) -> BuildReport:
    plan = ctx.plan
    for name in plan.images:
        ctx.report.images[name] = ImageResult(PENDING, plan.reasons[name])
    ctx.report.save(ctx.artifacts)
    steps = []
    for name in plan.images:
        parent = ctx.spec.images[name].parent
        requires: tuple[Hashable, ...] = (("image", parent),) if parent in plan.images else ()
        jobs = []
        for platform in plan.platforms[name]:
            key = ("platform", name, platform)
            jobs.append(key)
            steps.append(Step(key, _platform_step(ctx, name, platform), requires=requires))
        steps.append(Step(("image", name), _image_step(ctx, name), after=tuple(jobs), requires=requires))

    def skipped(key: Hashable, cause: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == "image" and isinstance(cause, tuple):
            ctx.report.update(key[1], ctx.artifacts, status=SKIPPED, reason=f"ancestor {cause[1]} failed")

    def cancelled(key: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == "image":
            ctx.report.update(key[1], ctx.artifacts, status=INTERRUPTED,
                              reason=f"interrupted by {signals.signal_name()} {ctx.step_of(key[1])}")

    run_steps(steps, workers=workers, on_skip=skipped, stop=signals.stopping, on_cancel=cancelled)
    if signals.stopping():
        ctx.report.interrupted = signals.signal_name()
        for name, result in ctx.report.images.items():
            if result.status == PENDING:
                ctx.report.update(name, ctx.artifacts, status=INTERRUPTED,
                                  reason=f"interrupted by {signals.signal_name()} {ctx.step_of(name)}")
    ctx.report.finished = utc_now()
    ctx.report.save(ctx.artifacts)
    return ctx.report


def _platform_step(ctx: BuildContext, name: str, platform: str) -> Callable[[], bool]:
    return lambda: image_job.run(ctx, name, platform).ok


def _image_step(ctx: BuildContext, name: str) -> Callable[[], bool]:
    return lambda: publish.finalise(ctx, name)
