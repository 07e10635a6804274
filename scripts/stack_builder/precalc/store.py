"""The prediction store: an embedded DuckDB database, ``artifacts/precalc.duckdb``.

Table ``predictions`` holds ``image``, ``digest``, ``key`` and every declared output column, unique on
(``digest``, ``key``): a key precalculated again for the same digest keeps the newest prediction. Table
``precalc_shards`` says which shard of which run is stored. A shard's rows
and its record go in one transaction, so a run stopped at any point leaves whole shards only, and a
re-run skips exactly those.
"""
from __future__ import annotations

import csv
import logging
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from stack_builder.checks.modelcheck import Table, is_null
from stack_builder.errors import StackError, StepFailed
from stack_builder.records.files import utc_now

LOGGER = logging.getLogger(__name__)

SQL_TYPES = {"float": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN", "string": "VARCHAR"}
FIXED = ("image", "digest", "key")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _value(kind: str, text: str) -> Any:
    if is_null(text):
        return None
    if kind == "float":
        return float(text)
    if kind == "integer":
        return int(float(text))
    if kind == "boolean":
        return text.strip().lower() in ("true", "1")
    return text


def check_columns(columns: Sequence[tuple[str, str]]) -> None:
    """Output column names become SQL columns: plain identifiers only, and not one of ours."""
    for name, _ in columns:
        if not NAME_RE.fullmatch(name) or name.lower() in FIXED:
            raise StackError(f"model column '{name[:70]}' cannot be a column of the prediction store: use letters, "
                             f"digits and _ (not starting with a digit), and not {', '.join(FIXED)}")


class Store:
    def __init__(self, path: Path) -> None:
        import duckdb  # a large module: loaded only by precalc

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise StackError(f"the prediction store {path} cannot be opened: {exc}") from None
        self.path = path
        self.db.execute("CREATE TABLE IF NOT EXISTS predictions (image VARCHAR NOT NULL, digest VARCHAR NOT NULL, "
                        "key VARCHAR NOT NULL, PRIMARY KEY (digest, key))")
        self.db.execute("CREATE TABLE IF NOT EXISTS precalc_shards (digest VARCHAR NOT NULL, run VARCHAR NOT NULL, "
                        "shard INTEGER NOT NULL, rows INTEGER NOT NULL, stored VARCHAR NOT NULL, "
                        "PRIMARY KEY (digest, run, shard))")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.db.close()

    def ensure(self, columns: Sequence[tuple[str, str]]) -> None:
        """Add the model's output columns the table lacks. A column another model declared with another type (or
        the same name in another case: SQL does not tell them apart) is refused before anything runs."""
        check_columns(columns)
        have = {str(n).lower(): (str(n), str(t)) for n, t in self.db.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'predictions'"
        ).fetchall()}
        for name, kind in columns:
            found = have.get(name.lower())
            if found is None:
                self.db.execute(f'ALTER TABLE predictions ADD COLUMN "{name}" {SQL_TYPES[kind]}')
            elif found != (name, SQL_TYPES[kind]):
                raise StackError(f"column {name} ({kind}) cannot go into {self.path}: it already has {found[0]} "
                                 f"as {found[1]} (another model's); rename the column, or use another artifacts "
                                 "folder")

    def stored_shards(self, digest: str, run: str) -> set[int]:
        rows = self.db.execute("SELECT shard FROM precalc_shards WHERE digest = ? AND run = ?", [digest, run])
        return {int(r[0]) for r in rows.fetchall()}

    def put_shard(self, *, image: str, digest: str, run: str, shard: int, keys: list[str], output: Table,
                  columns: Sequence[tuple[str, str]]) -> int:
        """Store a validated shard and its record in one transaction; return the rows written. Nothing of a
        shard is stored unless all of it is."""
        import duckdb

        values = [[image, digest, key, *(_value(kind, row[i]) for i, (_, kind) in enumerate(columns))]
                  for key, row in zip(keys, output.rows, strict=True)]
        # Through a CSV file DuckDB reads itself: row by row from Python (executemany) costs ~1.5 ms a row.
        with tempfile.NamedTemporaryFile("w", suffix=".csv", dir=self.path.parent, delete=False,
                                         encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "digest", "key", *(n for n, _ in columns)])
            writer.writerows([["" if v is None else ("true" if v is True else "false" if v is False else v)
                               for v in row] for row in values])
        names = ", ".join(f'"{n}"' for n, _ in columns)
        types = ", ".join(f"'{n}': '{t}'" for n, t in [("image", "VARCHAR"), ("digest", "VARCHAR"),
                                                        ("key", "VARCHAR"), *((n, SQL_TYPES[k]) for n, k in columns)])
        escaped = handle.name.replace("'", "''")
        self.db.execute("BEGIN TRANSACTION")
        try:
            # A key stored before for this digest (another library file, another sample) gets this run's
            # prediction: one row per (digest, key), the newest.
            self.db.execute(f"INSERT OR REPLACE INTO predictions (image, digest, key, {names}) SELECT * FROM "
                            f"read_csv('{escaped}', header = true, columns = {{{types}}}, nullstr = '', "
                            "auto_detect = false)")
            self.db.execute("INSERT OR REPLACE INTO precalc_shards VALUES (?, ?, ?, ?, ?)",
                            [digest, run, shard, len(keys), utc_now()])
            self.db.execute("COMMIT")
        except (duckdb.Error, OverflowError, ValueError) as exc:
            self.db.execute("ROLLBACK")
            raise StepFailed(f"not stored: {exc}") from None
        finally:
            Path(handle.name).unlink(missing_ok=True)
        return len(values)

    def count(self, digest: str | None = None) -> int:
        query = "SELECT count(*) FROM predictions" + (" WHERE digest = ?" if digest else "")
        found = self.db.execute(query, [digest] if digest else []).fetchone()
        return int(found[0]) if found else 0

    def coverage(self, image: str) -> dict[str, int]:
        """Rows stored per digest of ``image``."""
        rows = self.db.execute("SELECT digest, count(*) FROM predictions WHERE image = ? GROUP BY digest", [image])
        return {str(d): int(n) for d, n in rows.fetchall()}

    def lookup(self, image: str, keys: Sequence[str], columns: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        names = ", ".join(f'"{n}"' for n, _ in columns)
        marks = ", ".join("?" for _ in keys)
        return self.db.execute(f"SELECT digest, key, {names} FROM predictions WHERE image = ? AND key IN ({marks}) "
                               "ORDER BY key, digest", [image, *keys]).fetchall()

    def export(self, image: str, folder: Path, columns: Sequence[tuple[str, str]]) -> Path:
        """Write ``image``'s predictions to ``folder/predictions-<image>.parquet``."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"predictions-{image}.parquet"
        names = ", ".join(f'"{n}"' for n, _ in columns)
        escaped = str(target).replace("'", "''")
        self.db.execute(f"COPY (SELECT image, digest, key, {names} FROM predictions WHERE image = ? "
                        f"ORDER BY digest, key) TO '{escaped}' (FORMAT PARQUET)", [image])
        return target

    def load(self, files: Sequence[Path], columns: Sequence[tuple[str, str]]) -> int:
        """Add the rows of Parquet files written by ``export`` (or by shard jobs); return the rows added."""
        names = ", ".join(f'"{n}"' for n, _ in columns)
        before = self.count()
        self.db.execute("BEGIN TRANSACTION")
        try:
            for path in files:
                escaped = str(path).replace("'", "''")
                self.db.execute(f"INSERT OR REPLACE INTO predictions (image, digest, key, {names}) "
                                f"SELECT image, digest, key, {names} FROM read_parquet('{escaped}')")
            self.db.execute("COMMIT")
        except Exception:
            self.db.execute("ROLLBACK")
            raise
        return self.count() - before
