"""The prediction store: an embedded DuckDB database, ``artifacts/precalc.duckdb``.

Table ``predictions`` holds ``image``, ``digest``, ``key`` and every declared output column, unique on
(``digest``, ``key``): a key precalculated again for the same digest keeps the newest prediction. Table
``precalc_shards`` says which shard of which run is stored. A shard's rows
and its record go in one transaction, so a run stopped at any point leaves whole shards only, and a
re-run skips exactly those.
"""
from __future__ import annotations

import csv
import json
import logging
import re
import tempfile
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from stack_builder.errors import StackError, StepFailed, shown
from stack_builder.precalc import schema
from stack_builder.precalc.validate import Rows
from stack_builder.records.files import utc_now

LOGGER = logging.getLogger(__name__)

SQL_TYPES = {"float": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN", "string": "VARCHAR"}
FIXED = ("image", "digest", "key")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_columns(columns: Sequence[tuple[str, str]]) -> None:
    """Output column names become SQL columns: plain identifiers only, not one of ours, and no two that differ
    only in case (SQL does not tell them apart)."""
    for name, _ in columns:
        if not NAME_RE.fullmatch(name) or name.lower() in FIXED:
            raise StackError(f"model column '{name[:70]}' cannot be a column of the prediction store: use letters, "
                             f"digits and _ (not starting with a digit), and not {', '.join(FIXED)}")
    twice = [n for n, count in Counter(name.lower() for name, _ in columns).items() if count > 1]
    if twice:
        same = [name for name, _ in columns if name.lower() in twice]
        raise StackError(f"model columns {', '.join(same)} (spec.yml, the image's model: block) differ only in "
                         "case, and the prediction store cannot tell them apart: rename one of them")


def export_target(folder: Path, image: str) -> Path:
    """Where ``--export`` writes ``image``'s predictions; refused when that would overwrite anything."""
    target = folder / f"predictions-{image}.parquet"
    if folder.exists() and not folder.is_dir():
        raise StackError(f"--export {shown(str(folder), 200)}: a file, not a folder; give a folder for "
                         f"{target.name}")
    if target.exists() or target.is_symlink():
        raise StackError(f"--export {shown(str(folder), 200)}: {target.name} is already there and precalc never "
                         "overwrites an export; remove that file to replace it, or give another folder")
    return target


class Store:
    def __init__(self, path: Path) -> None:
        import duckdb  # a large module: loaded only by precalc

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise StackError(f"the prediction store {path} cannot be opened: {exc}") from None
        self.path = path
        version = schema.duckdb_version(self.db)
        if version > schema.SCHEMA_VERSION:  # before anything is changed
            self.db.close()
            raise schema.newer(version, self.shown)
        _create(self.db, version)

    @property
    def shown(self) -> str:
        return f"duckdb://{self.path.resolve()}"

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.db.close()

    def ensure(self, columns: Sequence[tuple[str, str]], image: str = "") -> None:
        """Add the model's output columns the table lacks. A column another model declared with another type (or
        the same name in another case: SQL does not tell them apart) is refused before anything runs. The
        digests of ``image`` stored before the models table was (schema 1) get their row there."""
        check_columns(columns)
        if image:
            self.db.execute("INSERT INTO models SELECT DISTINCT image, digest, ? FROM predictions WHERE image = ? "
                            "AND digest NOT IN (SELECT digest FROM models WHERE image = ?)",
                            [json.dumps([list(c) for c in columns]), image, image])
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

    def put_shard(self, *, image: str, digest: str, run: str, shard: int, rows: Rows,
                  columns: Sequence[tuple[str, str]]) -> int:
        """Store a checked shard and its record in one transaction; return the rows written. Nothing of a
        shard is stored unless all of it is."""
        self.put(image, digest, [rows], columns, record=[digest, run, shard, len(rows.keys), utc_now(),
                                                          json.dumps(rows.filled)])
        return len(rows.keys)

    def put(self, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]], *,
            record: list[Any] | None = None) -> None:
        """Store ``parts`` (and a shard's ``record``) in one transaction: all of it, or nothing (StepFailed)."""
        import duckdb

        # Through a CSV file DuckDB reads itself: row by row from Python (executemany) costs ~1.5 ms a row.
        with tempfile.NamedTemporaryFile("w", suffix=".csv", dir=self.path.parent, delete=False,
                                         encoding="utf-8", newline="") as handle:
            _write_csv(handle, image, digest, parts, columns)
        names = ", ".join(f'"{n}"' for n, _ in columns)
        self.db.execute("BEGIN TRANSACTION")
        try:
            # A key stored before for this digest (another library file, another sample) gets this run's
            # prediction: one row per (digest, key), the newest.
            self.db.execute(f"INSERT OR REPLACE INTO predictions (image, digest, key, {names}) SELECT * FROM "
                            f"{_read_csv_sql(handle.name, columns)}")
            self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                            [image, digest, json.dumps([list(c) for c in columns])])
            if record is not None:
                self.db.execute("INSERT OR REPLACE INTO precalc_shards (digest, run, shard, rows, stored, filled) "
                                "VALUES (?, ?, ?, ?, ?, ?)", record)
            self.db.execute("COMMIT")
        except (duckdb.Error, OverflowError, ValueError) as exc:
            self.db.execute("ROLLBACK")
            raise StepFailed(f"not stored: {shown(str(exc), 400)}") from None
        finally:
            Path(handle.name).unlink(missing_ok=True)

    def run_filled(self, digest: str, run: str, columns: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
        """Values per column of each stored shard of ``run``."""
        found = self.db.execute("SELECT rows, filled FROM precalc_shards WHERE digest = ? AND run = ?", [digest, run])
        return [json.loads(filled) if filled is not None else {n: int(rows) for n, _ in columns}
                for rows, filled in found.fetchall()]

    def run_rows(self, digest: str, run: str) -> int:
        """Rows of ``run``'s stored shards: the keys of its library (or sample) stored."""
        found = self.db.execute("SELECT sum(rows) FROM precalc_shards WHERE digest = ? AND run = ?", [digest, run])
        total = found.fetchone()
        return int(total[0]) if total and total[0] is not None else 0

    def drop_run(self, digest: str, run: str, keys: Sequence[str]) -> None:
        """Remove a refused run: its rows and its shards' records, in one transaction."""
        self.db.execute("BEGIN TRANSACTION")
        try:
            self.db.execute("DELETE FROM predictions WHERE digest = ? AND key IN (SELECT unnest(?::VARCHAR[]))",
                            [digest, list(keys)])
            self.db.execute("DELETE FROM precalc_shards WHERE digest = ? AND run = ?", [digest, run])
            self.db.execute("COMMIT")
        except Exception:
            self.db.execute("ROLLBACK")
            raise

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

    def export(self, image: str, digest: str, target: Path, columns: Sequence[tuple[str, str]]) -> Path:
        """Write the predictions of ``image`` at ``digest`` to ``target`` (a Parquet file; see ``export_target``)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        names = ", ".join(f'"{n}"' for n, _ in columns)
        escaped = str(target).replace("'", "''")
        self.db.execute(f"COPY (SELECT image, digest, key, {names} FROM predictions WHERE image = ? AND digest = ? "
                        f"ORDER BY key) TO '{escaped}' (FORMAT PARQUET)", [image, digest])
        return target

    def read_parquet(self, path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
        return read_parquet(path)


def _create(db: Any, version: int) -> None:
    """The store's tables, created or brought from ``version`` to the tool's (see ``schema``)."""
    db.execute("CREATE TABLE IF NOT EXISTS predictions (image VARCHAR NOT NULL, digest VARCHAR NOT NULL, "
               "key VARCHAR NOT NULL, PRIMARY KEY (digest, key))")
    db.execute("CREATE TABLE IF NOT EXISTS precalc_shards (digest VARCHAR NOT NULL, run VARCHAR NOT NULL, "
               "shard INTEGER NOT NULL, rows INTEGER NOT NULL, stored VARCHAR NOT NULL, "
               "PRIMARY KEY (digest, run, shard))")
    # values per column, for the all-null rule judged on the whole run (NULL: a shard stored before there
    # was this column, when each shard was judged alone, so every column had a value)
    db.execute("ALTER TABLE precalc_shards ADD COLUMN IF NOT EXISTS filled VARCHAR")
    # schema version 2: the models table (each digest's columns, for readers) and the version table
    db.execute("CREATE TABLE IF NOT EXISTS models (image VARCHAR NOT NULL, digest VARCHAR NOT NULL, "
               "columns VARCHAR NOT NULL, PRIMARY KEY (image, digest))")
    db.execute("CREATE TABLE IF NOT EXISTS store_schema (version INTEGER NOT NULL)")
    if version < schema.SCHEMA_VERSION:
        db.execute("DELETE FROM store_schema")
        db.execute("INSERT INTO store_schema VALUES (?)", [schema.SCHEMA_VERSION])

def read_parquet(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows of a Parquet file; a file DuckDB cannot read is refused, naming it."""
    import duckdb

    escaped = str(path).replace("'", "''")
    with duckdb.connect() as db:
        try:
            found = db.execute(f"SELECT * FROM read_parquet('{escaped}')")
            return [str(d[0]) for d in found.description or []], found.fetchall()
        except duckdb.Error as exc:
            raise StackError(f"--load {shown(str(path), 200)}: not a Parquet file precalc can read "
                             f"({shown(str(exc), 200)})") from None


def _read_csv_sql(path: str, columns: Sequence[tuple[str, str]]) -> str:
    """DuckDB's read of a CSV that ``_write_csv`` wrote, every column typed as declared."""
    types = ", ".join(f"'{n}': '{t}'" for n, t in [("image", "VARCHAR"), ("digest", "VARCHAR"), ("key", "VARCHAR"),
                                                    *((n, SQL_TYPES[k]) for n, k in columns)])
    escaped = path.replace("'", "''")
    return (f"read_csv('{escaped}', header = true, columns = {{{types}}}, nullstr = '', auto_detect = false, "
            "max_line_size = 1073741824)")


def export_rows(scratch: Path, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]],
                target: Path) -> Path:
    """Rows held in memory (another store's) written to ``target`` as the DuckDB store exports them."""
    import duckdb

    csv_path = scratch / "export.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        _write_csv(handle, image, digest, parts, columns)
    escaped = str(target).replace("'", "''")
    with duckdb.connect() as db:
        db.execute(f"COPY (SELECT * FROM {_read_csv_sql(str(csv_path), columns)} ORDER BY key) TO '{escaped}' "
                   "(FORMAT PARQUET)")
    return target


def _cell(value: Any) -> Any:
    """A value as CSV text DuckDB reads back exactly: ints as they are, floats by repr (the shortest text
    that reads back to the same double), missing as the empty field."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else value


def _write_csv(handle: Any, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(["image", "digest", "key", *(n for n, _ in columns)])
    for part in parts:
        writer.writerows([[image, digest, key, *map(_cell, row)] for key, row in zip(part.keys, part.typed, strict=True)])
