"""Execute a plan: every (image, platform) job, then each image's publish step, parents first.

The scheduler runs them; this module only says which step needs which. An image's platform jobs
require its parent's publish step; its publish step runs after all of its platform jobs. A
multi-platform image builds the engine's native platform first: the other platforms start after it,
and only if it passed (else they are "not attempted", and no emulated build is spent on it).
"""
from __future__ import annotations

import logging
from typing import Callable, Hashable

from stack_builder import signals
from stack_builder.pipeline import image_job, publish
from stack_builder.errors import RegistryError
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.plan.plan import primary_platform
from stack_builder.registry import multiarch
from stack_builder.pipeline.scheduler import Step, run_steps
from stack_builder.records.files import utc_now
from stack_builder.records.report import INTERRUPTED, PENDING, SKIPPED, BuildReport, ImageResult

LOGGER = logging.getLogger(__name__)


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
        first = native_first(ctx, name)
        for platform in plan.platforms[name]:
            key = ("platform", name, platform)
            jobs.append(key)
            after: tuple[Hashable, ...] = (("platform", name, first),) if first and platform != first else ()
            steps.append(Step(key, _platform_step(ctx, name, platform, first), requires=requires, after=after))
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


def _platform_step(ctx: BuildContext, name: str, platform: str, first: str | None) -> Callable[[], bool]:
    def step() -> bool:
        before = ctx.outcomes.get(name, {}).get(first) if first and platform != first else None
        first_failed = first if before is not None and not before.ok else primary_missing(ctx, name, platform)
        if first_failed is not None:
            reason = f"not attempted: {first_failed} failed"
            ctx.outcomes.setdefault(name, {})[platform] = PlatformOutcome(platform, reason=reason)
            LOGGER.info("%s (%s): %s", name, platform, reason)
            return False
        return image_job.run(ctx, name, platform).ok
    return step


def _image_step(ctx: BuildContext, name: str) -> Callable[[], bool]:
    return lambda: publish.finalise(ctx, name)
