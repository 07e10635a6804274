"""A shard's output, checked before it is stored: the declared columns and types, one row per input row in
order, no column all null. Row i is then the prediction for the shard's key i (pure)."""
from __future__ import annotations

from stack_builder.checks.modelcheck import Table, is_null, type_ok
from stack_builder.spec.stack_spec import ModelSpec


def problem(output: Table, model: ModelSpec, rows: int) -> str | None:
    """Why ``output`` (for ``rows`` input rows) cannot be stored, or None when it can."""
    declared = [name for name, _ in model.columns]
    if output.header != declared:
        return f"columns {output.header} are not the declared {declared}"
    if len(output.rows) != rows:
        return f"{len(output.rows)} output rows for {rows} input rows: each input row needs exactly one, in order"
    ragged = [n + 1 for n, row in enumerate(output.rows) if len(row) != len(declared)]
    if ragged:
        return f"row(s) {', '.join(map(str, ragged[:5]))} do not have {len(declared)} values"
    for name, kind in model.columns:
        values = output.column(name)
        if all(is_null(v) for v in values):
            return f"column {name} is null in every row"
        wrong = [n + 1 for n, v in enumerate(values) if not is_null(v) and not (
            type_ok(kind, v) and (kind != "integer" or abs(float(v)) < 2 ** 63))]  # (the store's BIGINT)
        if wrong:
            return f"column {name} is not {kind} in row(s) {', '.join(map(str, wrong[:5]))}"
    return None
