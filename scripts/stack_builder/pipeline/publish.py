"""An image's last step: decide its status from its platforms' outcomes, publish it, and return its result.

Only an image whose every required platform passed its tests is pushed (``publication``). The digest is read
back from the registry and compared; a model image's check results are stored as a gate record bound to that
digest; and what is inside the image is recorded for the wiki. The step's answer is an ``ImageOutcome``: the
image's report entry, made in one place (``_result``), and what its children build on.
"""
from __future__ import annotations

import logging
import traceback
from typing import Mapping, Sequence

from stack_builder import signals
from stack_builder.errors import Interrupted, StepFailed
from stack_builder.kinds import Reason, ReasonKind, Status
from stack_builder.pipeline import agreement, publication
from stack_builder.pipeline.context import BuildContext, ImageOutcome, PlatformOutcome
from stack_builder.pipeline.publication import Gathered, Publication
from stack_builder.pipeline.tagging import Tagger
from stack_builder.records import junit
from stack_builder.records.junit import CaseResult
from stack_builder.records.logfile import open_log
from stack_builder.records.report import ImageResult
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.registry.credentials import redact_all

LOGGER = logging.getLogger(__name__)


def finalise(ctx: BuildContext, name: str, outcomes: Sequence[PlatformOutcome]) -> ImageOutcome:
    """Decide the image's status from its platforms, then publish it. Never raises. Its steps are written as
    JUnit test cases too, for a test reporter."""
    outcome = _finalise(ctx, name, outcomes)
    result = outcome.result
    ctx.progress.finish(name)
    ctx.enter(name, f"done: {result.status}" + (f" ({result.reason})" if not outcome.ok else ""))
    try:
        junit.write_steps(ctx.artifacts / "junit" / f"{name}-steps.xml", name, _step_cases(ctx, name, outcomes, result))
    except OSError as exc:
        LOGGER.warning("%s: the JUnit file of its steps was not written: %s", name, exc)
    return outcome


def _step_cases(ctx: BuildContext, name: str, outcomes: Sequence[PlatformOutcome],
                result: ImageResult) -> list[junit.Case]:
    by_platform = {o.platform: o for o in outcomes}
    cases = []
    for platform in ctx.plan.platforms[name]:
        outcome = by_platform.get(platform)
        if outcome is None:
            cases.append(junit.Case(f"build and tests ({platform})", CaseResult.SKIPPED, result.reason.text))
        elif outcome.reused_from:
            cases.append(junit.Case(f"build and tests ({platform})", CaseResult.SKIPPED,
                                    f"reused from {outcome.reused_from}: built and tested before"))
        else:
            cases.append(junit.Case(f"build and tests ({platform})", CaseResult.PASSED if outcome.ok else CaseResult.FAILED,
                                    outcome.why))
    if ctx.spec.images[name].model is not None:
        model = result.model
        cases.append(junit.Case("model checks", CaseResult.SKIPPED if model is None else
                                CaseResult.PASSED if model.passed else CaseResult.FAILED, model.summary() if model else ""))
    if ctx.push:
        pushed = result.status.published
        tried = bool(result.moved) or pushed
        cases.append(junit.Case("push and read back", CaseResult.PASSED if pushed else
                                CaseResult.FAILED if tried else CaseResult.SKIPPED, "" if pushed else result.reason.text))
    return cases


def _finalise(ctx: BuildContext, name: str, ordered: Sequence[PlatformOutcome]) -> ImageOutcome:
    image = ctx.spec.images[name]
    if not ordered:  # the plan gave it no platform to build, so nothing was tried
        return ImageOutcome(ImageResult(Status.FAILED, Reason(ReasonKind.FAILED,
                                                              f"no platform of {name} is built in this run"),
                                        duration_s=0.0))
    log_path = ctx.log_path(name, ordered[0].platform if len(ordered) == 1 else None)
    checked = agreement.agreeing(ctx, name, ordered)
    built = [o for o in checked if o.ok]
    failed = {o.platform: o for o in checked if not o.ok}
    gathered = _gathered(ctx, name, checked, str(log_path))
    if signals.stopping() or any(o.interrupted for o in checked):
        why = next((o.why for o in checked if o.interrupted),
                   f"interrupted by {signals.signal_name()} before it was pushed")
        return _failed(ctx, name, gathered, Status.INTERRUPTED, Reason(ReasonKind.INTERRUPTED, why))
    if not built or (failed and image.require_all_platforms):
        why = "; ".join(f"{p}: {o.why}" for p, o in failed.items()) if ctx.multi(name) \
            else next(iter(failed.values())).why
        kind = next(iter(failed.values())).reason
        reason = Reason(kind.kind if kind is not None else ReasonKind.FAILED,
                        f"require_all_platforms: {why}" if built else why)
        return _failed(ctx, name, gathered, Status.FAILED, reason)
    ctx.enter(name, "the push" if ctx.push else "the manifest record")
    with open_log(log_path) as log:
        tagger = Tagger(ctx, name, log)
        try:
            published = publication.publish(ctx, name, built, gathered, tagger, log)
        except Interrupted:
            return _failed(ctx, name, gathered, Status.INTERRUPTED, Reason(
                ReasonKind.INTERRUPTED, f"interrupted by {signals.signal_name()} during the push: nothing more was "
                                        "pushed"), tagger=tagger)
        except StepFailed as exc:
            moved = f" (moved before the failure: {', '.join(tagger.moved)})" if tagger.moved else ""
            LOGGER.error("%s: FAILED: %s%s (log: %s)", name, exc, moved, log_path)
            return _failed(ctx, name, gathered, Status.FAILED, Reason(ReasonKind.FAILED, f"{exc}{moved}"),
                           tagger=tagger, notes=True)
        except Exception as exc:  # our bug: the image fails, the traceback goes to its log
            log.write(redact_all(traceback.format_exc()))
            LOGGER.exception("%s: internal error", name)
            return _failed(ctx, name, gathered, Status.FAILED, Reason(
                ReasonKind.INTERNAL, f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})"))
    result = _result(gathered, published.status, published.reason, ctx.progress.duration(name), published,
                     moved=tagger.moved, notes=tagger.notes)
    _log_published(ctx, name, result)
    return ImageOutcome(result, published.for_children)


def _failed(ctx: BuildContext, name: str, gathered: Gathered, status: Status, reason: Reason, *,
            tagger: Tagger | None = None, notes: bool = False) -> ImageOutcome:
    return ImageOutcome(_result(gathered, status, reason, ctx.progress.duration(name), None,
                                moved=tagger.moved if tagger is not None else {},
                                notes=tagger.notes if tagger is not None and notes else []))


def _result(gathered: Gathered, status: Status, reason: Reason, duration_s: float, published: Publication | None, *,
            moved: Mapping[str, str], notes: Sequence[str]) -> ImageResult:
    """The image's report entry: what its platforms found, and what publishing it did (if it got that far)."""
    p = published
    return ImageResult(
        status, reason, ref=p.ref if p else None, digest=p.digest if p else None, image_id=gathered.image_id,
        parent=gathered.parent, input_key=gathered.input_key, input_keys=dict(gathered.input_keys),
        reused_from=p.reused_from if p else None, duration_s=duration_s, tags=list(p.tags) if p else [],
        tests=gathered.tests, log=gathered.log, model=p.model if p else gathered.model,
        manifest=p.manifest if p else None, platforms_built=list(gathered.platforms_built),
        platforms_failed=dict(gathered.platforms_failed), moved=dict(moved), notes=list(notes),
        content_tags=list(p.content_tags) if p else [], example_outputs=dict(gathered.example_outputs),
        recipe=p.recipe if p else gathered.recipe, recipes_failed=dict(gathered.recipes_failed),
        sboms=dict(p.sboms) if p else {}, signed=list(p.signed) if p else [],
        platforms_disagreeing=list(gathered.platforms_disagreeing),
        allowed_over_budget=p.allowed_over_budget if p else False)


def _gathered(ctx: BuildContext, name: str, ordered: Sequence[PlatformOutcome], log: str) -> Gathered:
    built = [o for o in ordered if o.ok]
    multi = ctx.multi(name)
    return Gathered(
        # The first platform built here (a reused one has no local image): the manifest container runs on it.
        image_id=next((o.image_id for o in built if not o.reused_from), built[0].image_id) if built else None,
        parent=built[0].parent if built else None,
        input_key=built[0].input_key if built and not multi else None,
        input_keys={o.platform: o.input_key for o in ordered if o.input_key} if multi else {},
        tests=TestCounts.total({o.platform: o.tests for o in ordered if o.tests.junit}),
        model=ModelResult.merged({o.platform: o.model for o in ordered if o.model is not None}),
        log=log, platforms_built=tuple(o.platform for o in built),
        platforms_failed={o.platform: o.why for o in ordered if not o.ok},
        platforms_disagreeing=tuple(o.platform for o in ordered if o.reason is not None
                                    and o.reason.kind is ReasonKind.OUTPUTS_DISAGREE),
        example_outputs={o.platform: o.model.functional.output for o in built
                         if o.model is not None and o.model.functional.output},
        recipe=next((o.recipe for o in built if o.recipe), None),
        recipes_failed={(f"{r} ({o.platform})" if multi else r): why
                        for o in ordered for r, why in o.recipes_failed.items()})


def _log_published(ctx: BuildContext, name: str, result: ImageResult) -> None:
    note = f" [{', '.join(result.platforms_built)}]" if ctx.multi(name) else ""
    done = f"reused from {result.reused_from}" if result.status is Status.REUSED else \
        "built and pushed" if ctx.push else "built"
    LOGGER.info("%s: %s in %.1fs -> %s%s", name, done, result.duration_s or 0.0, result.ref, note)
