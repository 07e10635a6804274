"""The prediction store's schema, versioned: created and migrated by the tool, on DuckDB and PostgreSQL.

Version 1 had ``predictions`` and ``precalc_shards`` (on DuckDB, no version table at all); version 2 adds
the ``models`` table (image, digest, declared columns), so a reader knows each digest's columns without
the spec, and the one-row ``store_schema`` table. A store older than the tool is migrated when a writer
opens it; a newer one is refused, naming both versions, by writers and readers alike.
"""
from __future__ import annotations

import logging
from typing import Any

from stack_builder.errors import StackError, shown
from stack_builder.precalc.urls import StoreUrl

LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 3
LOCK_ID = 7_240_281  # the advisory lock that serialises migrations of one PostgreSQL store

# PostgreSQL: one migration per version, applied in order, each in the transaction that records it.
PG_MIGRATIONS: dict[int, list[str]] = {
    1: ["CREATE TABLE IF NOT EXISTS predictions (digest text NOT NULL, key text NOT NULL, image text NOT NULL, "
        "vals jsonb NOT NULL, PRIMARY KEY (digest, key))",
        "CREATE TABLE IF NOT EXISTS precalc_shards (digest text NOT NULL, run text NOT NULL, shard integer NOT NULL, "
        "rows integer NOT NULL, stored text NOT NULL, PRIMARY KEY (digest, run, shard))",
        "CREATE TABLE IF NOT EXISTS store_schema (version integer NOT NULL)"],
    2: ["ALTER TABLE precalc_shards ADD COLUMN IF NOT EXISTS filled text",
        "CREATE TABLE IF NOT EXISTS models (image text NOT NULL, digest text NOT NULL, columns jsonb NOT NULL, "
        "PRIMARY KEY (image, digest))"],
    # 3: a row's values kept as the loader wrote them (json, checked on the way in), not parsed into jsonb:
    # `serve` passes that text on, and reading it back is half the work of writing jsonb out again
    3: ["ALTER TABLE predictions ALTER COLUMN vals TYPE json USING vals::json"],
}


def newer(version: int, shown_url: str) -> StackError:
    return StackError(f"the prediction store {shown_url} has schema version {version}, newer than this "
                      f"stack-builder's ({SCHEMA_VERSION}): it was written by a later stack-builder; upgrade "
                      "stack-builder to use it (nothing was changed)")


def check_readable(version: int, shown_url: str) -> None:
    """Whether a reader can read a store of ``version`` (0: no store there)."""
    if version == 0:
        raise StackError(f"no prediction store at {shown_url} (no precalc tables): run `stack-builder precalc "
                         "--store ...` first")
    if version > SCHEMA_VERSION:
        raise newer(version, shown_url)
    if version < SCHEMA_VERSION:
        raise StackError(f"the prediction store {shown_url} has schema version {version}, older than this "
                         f"stack-builder's ({SCHEMA_VERSION}): run `stack-builder precalc --store ...` (any precalc, "
                         "e.g. with --lookup) once to migrate it, then read it again")


def duckdb_version(db: Any) -> int:
    tables = {str(r[0]) for r in db.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "store_schema" in tables:
        found = db.execute("SELECT max(version) FROM store_schema").fetchone()
        return int(found[0]) if found and found[0] is not None else 1
    return 1 if "predictions" in tables else 0


def pg_error(where: StoreUrl, exc: BaseException) -> str:
    """A driver's error as one line for a message: its first line (the rest quotes SQL), no password."""
    lines = str(exc).strip().splitlines()
    return shown(where.hide(lines[0] if lines else type(exc).__name__), 300)


def pg_connect(where: StoreUrl, *, read_only: bool = False) -> Any:
    """A session with the PostgreSQL store (autocommit; transactions are opened explicitly); a reader's
    session cannot write."""
    import psycopg

    options = "-c default_transaction_read_only=on" if read_only else ""
    try:
        if options:
            return psycopg.connect(where.dsn, autocommit=True, connect_timeout=15, application_name="stack-builder",
                                   options=options)
        return psycopg.connect(where.dsn, autocommit=True, connect_timeout=15, application_name="stack-builder")
    except psycopg.Error as exc:
        raise StackError(f"the prediction store {where.shown} cannot be reached: {pg_error(where, exc)}") from None


def pg_version(conn: Any) -> int:
    found = conn.execute("SELECT to_regclass('store_schema') IS NOT NULL, "
                         "to_regclass('predictions') IS NOT NULL").fetchone()
    if not found[0]:
        return 1 if found[1] else 0
    version = conn.execute("SELECT max(version) FROM store_schema").fetchone()
    return int(version[0]) if version and version[0] is not None else 1


def pg_migrate(conn: Any, shown_url: str, *, target: int = SCHEMA_VERSION) -> int:
    """Bring the store to ``target`` (concurrent runs wait on one lock, so one of them migrates); a newer
    store is refused. Returns the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
        found = pg_version(conn)
        if found > SCHEMA_VERSION:
            raise newer(found, shown_url)
        for version in range(found + 1, target + 1):
            for statement in PG_MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("DELETE FROM store_schema")
            conn.execute("INSERT INTO store_schema (version) VALUES (%s)", [version])
            LOGGER.info("prediction store %s: schema version %d", shown_url, version)
    return found
