"""Output checked before it is stored: a shard's, or a loaded file's, the same way (pure).

The declared columns, one row per input row in order (row i is the prediction for key i), every value
read strictly (``values``). Whether a column is null in every row is judged on the whole run, not here: a
check returns how many values each column has, and ``all_null`` judges the sum.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError, shown
from stack_builder.precalc import values
from stack_builder.spec.stack_spec import ModelSpec

LOGGER = logging.getLogger(__name__)


class InvalidOutput(StackError):
    """Output that cannot be stored; the message names the column, the key and the value."""


@dataclass(frozen=True)
class Rows:
    """Checked rows: a key and its typed values (in the declared columns' order) each."""
    keys: list[str]
    typed: list[list[values.Value]]
    filled: dict[str, int]  # values that are not missing, per column


def check(output: Table, model: ModelSpec, keys: Sequence[str]) -> Rows:
    """``output`` for the input rows named by ``keys``, read into values; InvalidOutput says why it cannot be."""
    declared = [name for name, _ in model.columns]
    if output.header != declared:
        raise InvalidOutput(f"columns {shown(output.header)} are not the declared {declared}")
    if len(output.rows) != len(keys):
        raise InvalidOutput(f"{len(output.rows)} output rows for {len(keys)} input rows: each input row needs "
                            "exactly one, in order")
    ragged = [n + 1 for n, row in enumerate(output.rows) if len(row) != len(declared)]
    if ragged:
        raise InvalidOutput(f"row(s) {', '.join(map(str, ragged[:5]))} do not have {len(declared)} values")
    typed: list[list[values.Value]] = []
    for key, row in zip(keys, output.rows, strict=True):
        out: list[values.Value] = []
        for (name, kind), text in zip(model.columns, row, strict=True):
            try:
                out.append(values.read(kind, text))
            except ValueError as exc:
                raise InvalidOutput(f"column {name} ({kind}), key {shown(key, 60)}: {exc}") from None
        typed.append(out)
    filled = {name: sum(row[i] is not None for row in typed) for i, name in enumerate(declared)}
    return Rows(list(keys), typed, filled)


def all_null(filled: Mapping[str, int], model: ModelSpec, *, what: str) -> str | None:
    """Why ``what`` (a whole run, or every file loaded) cannot be stored: a column with no value in any row."""
    empty = [name for name, _ in model.columns if filled.get(name, 0) == 0]
    if empty:
        return f"column {', '.join(empty)} is null in every row of {what}: the model predicts nothing there"
    return None


def total(counts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Per-column counts summed over shards (or files)."""
    summed: Counter[str] = Counter()
    for one in counts:
        summed.update(one)
    return dict(summed)
