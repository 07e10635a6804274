"""Model images: the functional check on the examples, and the drift check against the current stable.

Files go in and out of the container through the engine's archive API, not bind mounts, so
this works the same on a remote engine (DOCKER_HOST=ssh://...). One container per run: a whole
sample is one CSV.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from stack_builder.engine import containers
from stack_builder.engine.client import Engine
from stack_builder.errors import StepFailed, shown
from stack_builder.records.results import DriftResult, FunctionalResult, ModelResult
from stack_builder.spec.stack_spec import DEFAULT_TIMEOUTS, ModelSpec

LOGGER = logging.getLogger(__name__)

NULLS = {"", "nan", "null", "none", "inf", "-inf", "+inf", "infinity", "-infinity"}
IO_DIR = "/tmp/stack-model"
RUN_TIMEOUT_S = DEFAULT_TIMEOUTS["model"]  # each model run (spec `timeouts: {model: N}`, --timeout model=N)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def parse(cls, text: str) -> "Table":
        reader = list(csv.reader(io.StringIO(text)))
        if not reader:
            return cls([], [])
        return cls(reader[0], [row for row in reader[1:] if row])

    @classmethod
    def read(cls, path: Path) -> "Table":
        return cls.parse(path.read_text(encoding="utf-8"))

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()

    def column(self, name: str) -> list[str]:
        index = self.header.index(name)
        return [row[index] if index < len(row) else "" for row in self.rows]


class ModelCheckFailed(StepFailed):
    def __init__(self, message: str, model: ModelResult) -> None:
        super().__init__(message)
        self.model = model


def run_model(client: Engine, image: str, model: ModelSpec, table: Table, *,
              timeout_s: float = RUN_TIMEOUT_S) -> Table:
    """Run the image once on ``table``; return its output table."""
    command = [part.replace("{input}", f"{IO_DIR}/input.csv").replace("{output}", f"{IO_DIR}/output.csv")
               for part in model.command]
    finished = containers.run(client, image, command, timeout=containers.timeout_s(timeout_s),
                              what="the model check", files_in={f"{IO_DIR}/input.csv": table.text().encode("utf-8")},
                              files_out=[f"{IO_DIR}/output.csv"], network_disabled=True)
    if finished.exit_code != 0:
        logs = finished.output.strip().splitlines()[-5:]
        raise StepFailed(f"model exited {finished.exit_code}: {' | '.join(logs)[:400]}")
    output = finished.files.get(f"{IO_DIR}/output.csv")
    if output is None:
        raise StepFailed(f"model wrote no {IO_DIR}/output.csv")
    if b"\0" in output:
        raise StepFailed(f"the model's {IO_DIR}/output.csv is binary, not CSV text")
    try:
        return Table.parse(output.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StepFailed(f"the model's {IO_DIR}/output.csv is not UTF-8 CSV ({shown(str(exc))})") from None


def is_null(value: str) -> bool:
    return value.strip().lower() in NULLS


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def disagreeing_rows(a: Table, b: Table, tolerance: float) -> list[int]:
    """Rows where any value differs: numbers by more than ``tolerance``, other text at all."""
    bad = []
    for index, (left, right) in enumerate(zip(a.rows, b.rows, strict=False)):  # extra rows: below
        if len(left) != len(right):
            bad.append(index)
            continue
        for x, y in zip(left, right, strict=True):  # lengths were compared just above
            nx, ny = _number(x), _number(y)
            if nx is not None and ny is not None:
                if abs(nx - ny) > tolerance:
                    bad.append(index)
                    break
            elif x.strip() != y.strip():
                bad.append(index)
                break
    bad += list(range(min(len(a.rows), len(b.rows)), max(len(a.rows), len(b.rows))))
    return bad


def first_differences(reference: Table, other: Table, tolerance: float, *, limit: int = 3) -> str | None:
    """None when ``other`` agrees with ``reference`` (same columns; numbers within ``tolerance``, other text
    equal, the same rows); else the first differing rows, each as ``row i: <reference> != <other>``."""
    if other.header != reference.header:
        return f"columns {other.header} != {reference.header}"
    off = disagreeing_rows(reference, other, tolerance)
    if not off:
        return None

    def row(table: Table, index: int) -> str:
        return ",".join(table.rows[index]) if index < len(table.rows) else "(no row)"

    shown_rows = "; ".join(f"row {i + 1}: {shown(row(reference, i), 80)} != {shown(row(other, i), 80)}"
                           for i in off[:limit])
    return f"{len(off)} of {max(len(reference.rows), len(other.rows))} rows differ; {shown_rows}"


_TYPES: dict[str, Callable[[str], bool]] = {
    "float": lambda v: _number(v) is not None,
    "integer": lambda v: _number(v) is not None and float(v).is_integer(),
    "boolean": lambda v: v.strip().lower() in {"true", "false", "0", "1"},
    "string": lambda v: True,
}


def type_ok(kind: str, value: str) -> bool:
    """``value`` (not null) is of the declared column type ``kind``."""
    return _TYPES[kind](value)


def functional_check(client: Engine, image: str, model: ModelSpec, *,
                     timeout_s: float = RUN_TIMEOUT_S) -> FunctionalResult:
    """Run the examples; every check is a named true/false with details. Raises nothing for a failed check."""
    source = Table.read(model.examples / "input.csv")
    declared = [name for name, _ in model.columns]
    try:
        out = run_model(client, image, model, source, timeout_s=timeout_s)
    except StepFailed as exc:
        return FunctionalResult(False, {"runs": False}, {"error": str(exc)})
    checks: dict[str, bool] = {}
    details: dict[str, Any] = {"rows": len(source.rows)}

    checks["columns"] = out.header == declared
    if not checks["columns"]:
        details["columns"] = {"declared": declared, "got": out.header}
    checks["row_count"] = len(out.rows) == len(source.rows)
    if not checks["row_count"]:
        details["row_count"] = {"input": len(source.rows), "output": len(out.rows)}
    present = [name for name in declared if name in out.header]
    all_null = [name for name in present if all(is_null(v) for v in out.column(name))]
    checks["not_all_null"] = not all_null
    if all_null:
        details["all_null_columns"] = all_null
    wrong_type = [name for name, kind in model.columns if name in out.header
                  and not all(_TYPES[kind](v) for v in out.column(name) if not is_null(v))]
    checks["types"] = not wrong_type
    if wrong_type:
        details["wrong_type_columns"] = wrong_type

    if model.fixed:
        reference = Table.read(model.examples / "output.csv")
        off = disagreeing_rows(out, reference, model.tolerance)
        checks["matches_reference"] = not off and out.header == reference.header
        if off:
            details["rows_off_reference"] = off[:20]
        again = run_model(client, image, model, source, timeout_s=timeout_s)
        checks["two_runs_agree"] = not disagreeing_rows(out, again, 1e-9)
        # Order: the output for reversed input, reversed back, must be the same output.
        backwards = run_model(client, image, model, Table(source.header, source.rows[::-1]), timeout_s=timeout_s)
        checks["order_kept"] = not disagreeing_rows(out, Table(backwards.header, backwards.rows[::-1]), 1e-9)
    return FunctionalResult(all(checks.values()), checks, details, output=out.text())


def sample_pool(model: ModelSpec, n: int, seed: str) -> tuple[Table, bool] | None:
    """n rows from examples/reference.csv (with replacement only when the pool is smaller than n)."""
    path = model.examples / "reference.csv"
    if not path.is_file():
        return None
    pool = Table.read(path)
    rng = random.Random(seed)
    if len(pool.rows) >= n:
        return Table(pool.header, rng.sample(pool.rows, n)), False
    return Table(pool.header, [rng.choice(pool.rows) for _ in range(n)]), True


def drift_check(client: Engine, candidate: str, baseline: tuple[str, str, str] | None,
                model: ModelSpec, *, timeout_s: float = RUN_TIMEOUT_S) -> DriftResult:
    """Compare the candidate with the current stable on n sampled inputs.

    ``baseline`` is (pullable reference, digest, tag) or None when there is no stable yet.
    """
    settings = model.drift
    n = settings.sample_size()
    result = DriftResult("no baseline", True, n=n, epsilon=settings.epsilon, delta=settings.delta,
                         reuses=settings.reuses, tolerance=settings.tolerance,
                         max_disagreement=settings.max_disagreement, candidate=candidate)
    if baseline is None:
        return result
    ref, digest, tag = baseline
    result = replace(result, baseline=ref, baseline_digest=digest, baseline_tag=tag)
    sample = sample_pool(model, n, seed=digest)
    if sample is None:
        return replace(result, status="no reference pool (examples/reference.csv)")
    table, with_replacement = sample
    try:
        ours = run_model(client, candidate, model, table, timeout_s=timeout_s)
        theirs = run_model(client, ref, model, table, timeout_s=timeout_s)
    except StepFailed as exc:
        return replace(result, status=f"a model run failed: {exc}", passed=False)
    off = disagreeing_rows(ours, theirs, settings.tolerance)
    rate = len(off) / n
    return replace(result, status="compared", sampled_with_replacement=with_replacement, disagreements=len(off),
                   observed_rate=round(rate, 6), rate_upper_bound=round(min(1.0, rate + settings.epsilon), 6),
                   passed=rate <= settings.max_disagreement and ours.header == theirs.header)
