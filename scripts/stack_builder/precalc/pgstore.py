"""The prediction store on a PostgreSQL server that many runners write to at once (``--store postgresql://...``).

Same semantics as the DuckDB file: unique on (``digest``, ``key``), a key precalculated again keeps the
newest prediction, a shard's rows and its record in one transaction. A shard goes in by ``COPY`` into a
temporary staging table, then one upsert in key order (so two runs writing the same keys at once wait on
each other instead of deadlocking, and each key is stored once), then its record; a runner killed mid-COPY
leaves nothing, since the server aborts its transaction. Values are a JSON array per row in the model's
declared order (``models`` says which), so a model may have more columns than a table could.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from stack_builder.errors import StackError, StepFailed
from stack_builder.precalc import schema
from stack_builder.precalc.reader import _typed
from stack_builder.precalc.store import check_columns, export_rows, read_parquet
from stack_builder.precalc.urls import StoreUrl
from stack_builder.precalc.validate import Rows
from stack_builder.records.files import utc_now

LOGGER = logging.getLogger(__name__)

ATTEMPTS = 3  # a transaction the server aborted to break a deadlock, or a serialisation failure: tried again


class PgStore:
    def __init__(self, where: StoreUrl) -> None:
        self.where = where
        import psycopg

        self.conn = schema.pg_connect(where)
        try:
            schema.pg_migrate(self.conn, where.shown)
        except psycopg.Error as exc:  # e.g. a role that may not create tables
            self.conn.close()
            raise StackError(f"the prediction store {where.shown} cannot be set up (its tables created or migrated): "
                             f"{schema.pg_error(where, exc)}; the role of the URL needs CREATE on "
                             "the database's public schema (on PostgreSQL 15, be the database's owner)") from None
        except BaseException:
            self.conn.close()
            raise

    @property
    def shown(self) -> str:
        return self.where.shown

    def __enter__(self) -> "PgStore":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.conn.close()

    def ensure(self, columns: Sequence[tuple[str, str]], image: str = "") -> None:
        """Columns are checked as for DuckDB (the same spec works on both); values live in one JSON array."""
        check_columns(columns)

    def stored_shards(self, digest: str, run: str) -> set[int]:
        found = self.conn.execute("SELECT shard FROM precalc_shards WHERE digest = %s AND run = %s", [digest, run])
        return {int(r[0]) for r in found.fetchall()}

    def put_shard(self, *, image: str, digest: str, run: str, shard: int, rows: Rows,
                  columns: Sequence[tuple[str, str]]) -> int:
        """Store a checked shard and its record in one transaction; return the rows written."""
        self.put(image, digest, [rows], columns, record=[digest, run, shard, len(rows.keys), utc_now(),
                                                          json.dumps(rows.filled)])
        return len(rows.keys)

    def put(self, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]], *,
            record: list[Any] | None = None) -> None:
        """Store ``parts`` (and a shard's ``record``) in one transaction: all of it, or nothing (StepFailed)."""
        import psycopg
        from psycopg import errors

        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._put(image, digest, parts, columns, record)
                return
            except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                if attempt == ATTEMPTS:
                    raise StepFailed(f"not stored: {schema.pg_error(self.where, exc)}") from None
                LOGGER.warning("store %s: %s; trying again", self.shown, type(exc).__name__)
            except psycopg.Error as exc:
                raise StepFailed(f"not stored: {schema.pg_error(self.where, exc)}") from None

    def _put(self, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]],
             record: list[Any] | None) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS precalc_staging (key text NOT NULL, vals json NOT NULL) "
                           "ON COMMIT DELETE ROWS")
            with cursor.copy("COPY precalc_staging (key, vals) FROM STDIN") as copy:
                for part in parts:
                    for key, row in zip(part.keys, part.typed, strict=True):
                        copy.write_row((key, json.dumps(row, allow_nan=False)))
            # in key order, so that concurrent runs lock the same keys in the same order
            cursor.execute("INSERT INTO predictions (digest, key, image, vals) SELECT DISTINCT ON (key) %s, key, %s, "
                           "vals FROM precalc_staging ORDER BY key ON CONFLICT (digest, key) DO UPDATE SET "
                           "image = EXCLUDED.image, vals = EXCLUDED.vals", [digest, image])
            cursor.execute("INSERT INTO models (image, digest, columns) VALUES (%s, %s, %s::jsonb) ON CONFLICT "
                           "(image, digest) DO UPDATE SET columns = EXCLUDED.columns",
                           [image, digest, json.dumps([list(c) for c in columns])])
            if record is not None:
                cursor.execute("INSERT INTO precalc_shards (digest, run, shard, rows, stored, filled) VALUES "
                               "(%s, %s, %s, %s, %s, %s) ON CONFLICT (digest, run, shard) DO UPDATE SET "
                               "rows = EXCLUDED.rows, stored = EXCLUDED.stored, filled = EXCLUDED.filled", record)

    def run_filled(self, digest: str, run: str, columns: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
        found = self.conn.execute("SELECT rows, filled FROM precalc_shards WHERE digest = %s AND run = %s",
                                  [digest, run])
        return [json.loads(filled) if filled is not None else {n: int(rows) for n, _ in columns}
                for rows, filled in found.fetchall()]

    def run_rows(self, digest: str, run: str) -> int:
        """Rows of ``run``'s stored shards: the keys of its library (or sample) stored."""
        found = self.conn.execute("SELECT sum(rows) FROM precalc_shards WHERE digest = %s AND run = %s", [digest, run])
        total = found.fetchone()
        return int(total[0]) if total and total[0] is not None else 0

    def drop_run(self, digest: str, run: str, keys: Sequence[str]) -> None:
        """Remove a refused run: its rows and its shards' records, in one transaction."""
        with self.conn.transaction():
            self.conn.execute("DELETE FROM predictions WHERE digest = %s AND key = ANY(%s)", [digest, list(keys)])
            self.conn.execute("DELETE FROM precalc_shards WHERE digest = %s AND run = %s", [digest, run])

    def count(self, digest: str | None = None) -> int:
        query = "SELECT count(*) FROM predictions" + (" WHERE digest = %s" if digest else "")
        found = self.conn.execute(query, [digest] if digest else []).fetchone()
        return int(found[0]) if found else 0

    def coverage(self, image: str) -> dict[str, int]:
        """Rows stored per digest of ``image``."""
        found = self.conn.execute("SELECT digest, count(*) FROM predictions WHERE image = %s GROUP BY digest", [image])
        return {str(d): int(n) for d, n in found.fetchall()}

    def lookup(self, image: str, keys: Sequence[str], columns: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        found = self.conn.execute("SELECT digest, key, vals::text FROM predictions WHERE image = %s AND key = ANY(%s) "
                                  "ORDER BY key, digest", [image, list(keys)]).fetchall()
        return [(d, k, *(_typed(kind, v) for (_, kind), v in zip(columns, json.loads(vals), strict=True)))
                for d, k, vals in found]

    def export(self, image: str, digest: str, target: Path, columns: Sequence[tuple[str, str]]) -> Path:
        """Write the predictions of ``image`` at ``digest`` to ``target``, a Parquet file (through DuckDB)."""
        found = self.conn.execute("SELECT key, vals::text FROM predictions WHERE image = %s AND digest = %s "
                                  "ORDER BY key", [image, digest]).fetchall()
        part = Rows([str(k) for k, _ in found],
                    [[_typed(kind, v) for (_, kind), v in zip(columns, json.loads(vals), strict=True)]
                     for _, vals in found], {})
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            return export_rows(Path(scratch), image, digest, [part], columns, target)

    def read_parquet(self, path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
        return read_parquet(path)
