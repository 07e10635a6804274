"""Execute a plan: every (image, platform) job, then each image's publish step, parents first.

The scheduler runs them; this module only says which step needs which, and hands each step the results it
needs. An image's platform jobs require its parent's publish step, and build on the parent that step
published; its publish step runs after all of its platform jobs and receives their outcomes. A
multi-platform image builds the engine's native platform first: the other platforms start after it, and
only if it passed (else they are "not attempted", and no emulated build is spent on it). Each image's
result goes into the report as it arrives, on the scheduler's thread.
"""
from __future__ import annotations

import logging
from typing import Callable, Hashable, Mapping, Union

from stack_builder import signals
from stack_builder.errors import RegistryError
from stack_builder.kinds import Reason, ReasonKind, Status
from stack_builder.pipeline import image_job, publish
from stack_builder.pipeline.context import BuildContext, ImageOutcome, PlatformOutcome
from stack_builder.pipeline.scheduler import Step, run_steps
from stack_builder.plan.plan import ParentRef, primary_platform
from stack_builder.records.files import utc_now
from stack_builder.records.report import BuildReport, ImageResult
from stack_builder.registry import multiarch

LOGGER = logging.getLogger(__name__)

StepResult = Union[PlatformOutcome, ImageOutcome]
Inputs = Mapping[Hashable, StepResult]


def execute(ctx: BuildContext, report: BuildReport, *, workers: int) -> BuildReport:
    plan = ctx.plan
    for name in plan.images:
        report.images[name] = ImageResult(Status.PENDING, plan.reasons[name])
    report.save(ctx.artifacts)
    steps: list[Step[StepResult]] = []
    for name in plan.images:
        parent = ctx.spec.images[name].parent
        requires: tuple[Hashable, ...] = (("image", parent),) if parent in plan.images else ()
        jobs = []
        first = native_first(ctx, name)
        for platform in plan.platforms[name]:
            key = ("platform", name, platform)
            jobs.append(key)
            after: tuple[Hashable, ...] = (("platform", name, first),) if first and platform != first else ()
            steps.append(Step(key, _platform_step(ctx, name, platform, first), requires=requires, after=after))
        steps.append(Step(("image", name), _image_step(ctx, name), after=tuple(jobs), requires=requires))

    def recorded(key: Hashable, result: StepResult) -> None:
        if isinstance(result, ImageOutcome) and isinstance(key, tuple):
            ctx.progress.finish(key[1])
            report.record(key[1], result.result, ctx.artifacts)

    def skipped(key: Hashable, cause: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == "image" and isinstance(cause, tuple):
            ctx.progress.finish(key[1])
            report.record(key[1], ImageResult(Status.SKIPPED, Reason(ReasonKind.ANCESTOR_FAILED,
                                                                     f"ancestor {cause[1]} failed")), ctx.artifacts)

    def cancelled(key: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == "image":
            ctx.progress.finish(key[1])
            report.record(key[1], _interrupted(ctx, key[1]), ctx.artifacts)

    run_steps(steps, workers=workers, on_skip=skipped, stop=signals.stopping, on_cancel=cancelled, on_done=recorded)
    if signals.stopping():
        report.interrupted = signals.signal_name()
        for name, result in list(report.images.items()):
            if result.status is Status.PENDING:
                report.record(name, _interrupted(ctx, name), ctx.artifacts)
    report.finished = utc_now()
    report.save(ctx.artifacts)
    return report


def _interrupted(ctx: BuildContext, name: str) -> ImageResult:
    return ImageResult(Status.INTERRUPTED, Reason(
        ReasonKind.INTERRUPTED, f"interrupted by {signals.signal_name()} {ctx.progress.step_of(name)}"))


def native_first(ctx: BuildContext, name: str) -> str | None:
    """The platform an image builds first: the engine's native one, when the image has it among several."""
    platforms = ctx.plan.platforms[name]
    return ctx.native if len(platforms) > 1 and ctx.native in platforms else None


def primary_missing(ctx: BuildContext, name: str, platform: str) -> str | None:
    """In one platform's CI job: the image's primary platform, when this commit's job for it published nothing
    (it failed: this platform is not attempted)."""
    declared = ctx.spec.images[name].platforms
    primary = primary_platform(declared)
    if ctx.plan.platform is None or not ctx.push or len(declared) < 2 or platform == primary \
            or ctx.lookups is None or ctx.plan.commit_tag is None:  # (a dirty checkout has no per-commit tag)
        return None
    tag = multiarch.platform_tag(ctx.plan.commit_tag, primary)
    try:
        found = ctx.lookups.digest(ctx.repository(name).path, tag)
    except RegistryError:
        return None  # cannot tell: build, as before
    return None if found else primary


def parent_for(ctx: BuildContext, name: str, platform: str, inputs: Inputs) -> tuple[ParentRef | None, bool]:
    """What this platform builds on, and whether this run made it: what the parent's publish step in this run
    made for it, else what the plan found (a parent not built in this run)."""
    parent = ctx.spec.images[name].parent
    published = inputs.get(("image", parent)) if parent is not None else None
    if isinstance(published, ImageOutcome):
        return published.for_children.get(platform), True
    return ctx.parent_from_plan(name, platform), False


def _platform_step(ctx: BuildContext, name: str, platform: str,
                   first: str | None) -> Callable[[Inputs], StepResult]:
    def step(inputs: Inputs) -> StepResult:
        before = inputs.get(("platform", name, first)) if first and platform != first else None
        failed_first = isinstance(before, PlatformOutcome) and not before.ok
        first_failed = first if failed_first else primary_missing(ctx, name, platform)
        if first_failed is not None:
            reason = Reason(ReasonKind.NOT_ATTEMPTED, f"not attempted: {first_failed} failed")
            LOGGER.info("%s (%s): %s", name, platform, reason)
            return PlatformOutcome(platform, reason=reason)
        parent, from_run = parent_for(ctx, name, platform, inputs)
        return image_job.run(ctx, name, platform, parent, parent_from_run=from_run)
    return step


def _image_step(ctx: BuildContext, name: str) -> Callable[[Inputs], StepResult]:
    def step(inputs: Inputs) -> StepResult:
        outcomes = {r.platform: r for r in inputs.values() if isinstance(r, PlatformOutcome)}
        return publish.finalise(ctx, name, [outcomes[p] for p in ctx.plan.platforms[name] if p in outcomes])
    return step
