"""Cross-platform agreement of a model image: every platform gives the same answers on the examples.

Each platform passed its own checks; this compares them with each other, with the tolerance and rules
of the reference check, before anything is pushed. A platform that disagrees is left out of the index
and reported with its first differing rows, like any failed platform.
"""
from __future__ import annotations

import logging

from stack_builder import signals
from stack_builder.checks import modelcheck
from stack_builder.errors import StepFailed
from stack_builder.pipeline.context import BuildContext, PlatformOutcome

LOGGER = logging.getLogger(__name__)


def agreeing(ctx: BuildContext, name: str, built: list[PlatformOutcome],
              failed: dict[str, str]) -> tuple[list[PlatformOutcome], dict[str, str]]:
    """A model image built for several platforms: each platform's outputs on the examples must agree with the
    first platform's (same tolerance and rules as the reference check); a platform that disagrees is left out
    like a failed one, with its first differing rows. A platform reused from an earlier build agreed then."""
    model = ctx.spec.images[name].model
    checked = [o for o in built if not o.reused_from and o.image_id]
    if model is None or len(checked) < 2 or signals.stopping():
        return built, failed
    ctx.enter(name, "the cross-platform agreement")
    examples = modelcheck.Table.read(model.examples / "input.csv")
    outputs: dict[str, modelcheck.Table] = {}
    disagree: dict[str, str] = {}
    for outcome in checked:
        try:
            outputs[outcome.platform] = modelcheck.run_model(ctx.engine, str(outcome.image_id), model, examples,
                                                             timeout_s=ctx.timeout(name, "model"))
        except StepFailed as exc:
            disagree[outcome.platform] = f"the examples could not be run for the agreement check: {exc}"
    reference = next((o.platform for o in checked if o.platform in outputs), None)
    for platform, table in outputs.items():
        if reference is None or platform == reference:
            continue
        differs = modelcheck.first_differences(outputs[reference], table, model.tolerance)
        if differs is not None:
            disagree[platform] = f"its outputs disagree with {reference}'s on the examples: {differs}"
    for platform, why in disagree.items():
        LOGGER.error("%s (%s): left out: %s", name, platform, why)
        for outcome in built:
            if outcome.platform == platform:
                outcome.ok, outcome.reason = False, why
    return [o for o in built if o.platform not in disagree], {**failed, **disagree}
