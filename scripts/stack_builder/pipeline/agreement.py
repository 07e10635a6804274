"""Cross-platform agreement of a model image: every platform gives the same answers on the examples.

Each platform passed its own checks; their outputs on the examples (kept by the functional check) are
compared with each other, with the tolerance and rules of the reference check, before anything is
pushed: so a fixed model only (one whose output is a reference). A platform that disagrees is left out
of the index and reported with its first differing rows, like any failed platform. The same comparison
runs in `merge`, from the CI jobs' reports, for an image whose platforms were built on separate runners.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Mapping, Sequence

from stack_builder.checks import modelcheck
from stack_builder.kinds import Reason, ReasonKind
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.spec.stack_spec import ModelSpec

LOGGER = logging.getLogger(__name__)


def disagreeing(model: ModelSpec, outputs: Mapping[str, str], reference: str | None = None) -> dict[str, str]:
    """{platform: why} for the platforms whose example outputs disagree with ``reference``'s (default: the first
    platform's). Only a fixed model's platforms are compared."""
    if not model.fixed or len(outputs) < 2:
        return {}
    first = reference if reference is not None and reference in outputs else next(iter(outputs))
    expected = modelcheck.Table.parse(outputs[first])
    found = {}
    for platform, text in outputs.items():
        if platform == first:
            continue
        differs = modelcheck.first_differences(expected, modelcheck.Table.parse(text), model.tolerance)
        if differs is not None:
            found[platform] = f"its outputs disagree with {first}'s on the examples: {differs}"
    return found


def agreeing(ctx: BuildContext, name: str, outcomes: Sequence[PlatformOutcome]) -> list[PlatformOutcome]:
    """The image's platform outcomes, with those built here whose example outputs disagree with the native one's
    turned into failures (kind: outputs disagree). A platform reused from an earlier build agreed when it was
    built."""
    model = ctx.spec.images[name].model
    if model is None:
        return list(outcomes)
    outputs = {o.platform: o.model.functional.output for o in outcomes
               if o.ok and not o.reused_from and o.model is not None and o.model.functional.output}
    disagree = disagreeing(model, outputs, ctx.native)
    for platform, why in disagree.items():
        LOGGER.error("%s (%s): left out: %s", name, platform, why)
    return [replace(o, ok=False, reason=Reason(ReasonKind.OUTPUTS_DISAGREE, disagree[o.platform]))
            if o.platform in disagree else o for o in outcomes]
