"""The prediction store on a real PostgreSQL server (issue 28, point 6), written as the failures.

Two runs over the same library at once store each key once; a shard job killed mid-COPY stores nothing of
that shard and the same command resumes; an empty shard is a success with zero rows; a schema older than
the tool's is migrated and a newer one refused, naming both versions; hostile keys go in and come back
exactly; credentials never show. The writer here is the store's own code, as `precalc` drives it.
"""
from __future__ import annotations

import json

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError
from stack_builder.precalc import schema, validate
from stack_builder.precalc.reader import open_reader
from stack_builder.precalc.stores import PredictionStore, open_store
from stack_builder.spec.stack_spec import ModelSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "a" * 64
COLUMNS = (("y", "float"), ("n", "integer"), ("s", "string"), ("b", "boolean"))
MODEL = ModelSpec(columns=COLUMNS, examples=Path("."))
KEYS = [f"k{n:05d}" for n in range(2000)]


def cut(keys: list[str], count: int) -> list[list[str]]:
    size = -(-len(keys) // count)
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def rows(keys: list[str]) -> validate.Rows:
    table = Table([n for n, _ in COLUMNS], [[f"{i}.5", str(2 ** 62 + i), f"v'{i}\"", "true"]
                                            for i in range(len(keys))])
    return validate.check(table, MODEL, keys)


def store_run(url: str, run: str, shards: list[list[str]], order: list[int]) -> int:
    """What `precalc` does with its store: skip the shards stored, store each of the others with its record."""
    stored = 0
    with open_store(url) as store:
        store.ensure(COLUMNS, "m")
        done = store.stored_shards(DIGEST, run)
        for number in order:
            if number not in done:
                stored += store.put_shard(image="m", digest=DIGEST, run=run, shard=number, rows=rows(shards[number]),
                                          columns=COLUMNS)
    return stored


def keys_stored(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(k) for (k,) in conn.execute("SELECT key FROM predictions ORDER BY key").fetchall()]


def test_two_runs_at_once_over_the_same_library_store_each_key_once(postgres_db: str) -> None:
    shards = cut(KEYS, 20)
    errors: list[BaseException] = []

    def one(order: list[int]) -> None:
        try:
            store_run(postgres_db, "run-a", shards, order)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    # one forwards, one backwards, one in between: every shard is written by several at the same time
    threads = [threading.Thread(target=one, args=(order,)) for order in
               (list(range(20)), list(range(19, -1, -1)), [n for pair in zip(range(10), range(19, 9, -1)) for n in pair])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert keys_stored(postgres_db) == KEYS
    with open_store(postgres_db) as store:
        assert store.count(DIGEST) == 2000 and store.stored_shards(DIGEST, "run-a") == set(range(20))
        assert store.run_rows(DIGEST, "run-a") == 2000


KILLED = """
import sys, time
from stack_builder.precalc import pgstore
from test_precalc_postgres import KEYS, cut, store_run
real, calls = pgstore.json.dumps, [0]
def slow(value, **kw):
    calls[0] += 1
    if calls[0] == 2 * 100 + 50:  # half-way through the third shard's COPY
        print("MID-COPY", flush=True)
        time.sleep(600)
    return real(value, **kw)
pgstore.json.dumps = slow
store_run(sys.argv[1], "run-k", cut(KEYS[:400], 4), [0, 1, 2, 3])
"""


def test_a_shard_job_killed_mid_copy_stores_no_part_of_it_and_the_same_run_resumes(postgres_db: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'scripts'}:{REPO / 'tests'}"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, postgres_db], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "MID-COPY"
    with psycopg.connect(postgres_db) as conn:
        copying = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY precalc_staging%%'")
        assert copying.fetchone() == (1,)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    deadline = time.monotonic() + 30  # the server notices the dead client and aborts its transaction
    while time.monotonic() < deadline:
        with psycopg.connect(postgres_db) as conn:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stack-builder'"
                            ).fetchone() == (0,):
                break
        time.sleep(0.2)
    assert keys_stored(postgres_db) == KEYS[:200]  # the two whole shards stored before, nothing of the third
    with open_store(postgres_db) as store:
        assert store.stored_shards(DIGEST, "run-k") == {0, 1}
    assert store_run(postgres_db, "run-k", cut(KEYS[:400], 4), [0, 1, 2, 3]) == 200  # resumed: only what is missing
    assert keys_stored(postgres_db) == KEYS[:400]


def test_an_empty_shard_is_a_success_with_zero_rows(postgres_db: str) -> None:
    with open_store(postgres_db) as store:
        store.ensure(COLUMNS, "m")
        assert store.put_shard(image="m", digest=DIGEST, run="r", shard=7, rows=rows([]), columns=COLUMNS) == 0
        assert store.stored_shards(DIGEST, "r") == {7} and store.count(DIGEST) == 0 and store.run_rows(DIGEST, "r") == 0


def test_an_older_schema_is_migrated_and_a_newer_one_refused_naming_both(postgres_db: str) -> None:
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        schema.pg_migrate(conn, "old", target=1)  # what a first release created: no models table, no `filled`
        conn.execute("INSERT INTO precalc_shards (digest, run, shard, rows, stored) VALUES (%s, 'r', 0, 3, 'then')",
                     [DIGEST])
        conn.execute("INSERT INTO predictions (digest, key, image, vals) VALUES (%s, 'old', 'm', "
                     "'[1.5, 9007199254740993, \"x\", false]'::jsonb)", [DIGEST])
    with pytest.raises(StackError, match=r"schema version 1, older than this stack-builder's \(3\)"):
        with open_reader(postgres_db):
            pass
    with open_store(postgres_db) as store:  # a writer migrates it, keeping what it had
        assert store.stored_shards(DIGEST, "r") == {0}
        assert store.run_filled(DIGEST, "r", COLUMNS) == [{"y": 3, "n": 3, "s": 3, "b": 3}]
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("INSERT INTO models (image, digest, columns) VALUES ('m', %s, %s::jsonb)",
                     [DIGEST, json.dumps([list(c) for c in COLUMNS])])
    with open_reader(postgres_db) as reader:  # values stored as jsonb read the same as json
        assert reader.rows(DIGEST, ["old"]) == {"old": {"y": 1.5, "n": 9007199254740993, "s": "x", "b": False}}
        assert reader.raw_rows(DIGEST, ["old"]) == {"old": '[1.5, 9007199254740993, "x", false]'}
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM store_schema").fetchall() == [(3,)]
        conn.execute("UPDATE store_schema SET version = 4")
    for opening in (lambda: open_store(postgres_db), lambda: open_reader(postgres_db).__enter__()):
        with pytest.raises(StackError) as caught:
            opening()
        assert "schema version 4, newer than this stack-builder's (3)" in str(caught.value)
        assert "postgresql://postgres:***@" in str(caught.value)


HOSTILE = ["it's", 'say "hi"', "back\\slash", "\\N", "tab\there", "new\nline", "cr\rx", "x" * 10240, "é☃😀",
           "\u202eRTL", "e\u0301", " lead", "trail ", ",", "'; DROP TABLE predictions; --", "%s", "{}", "[1]"]


def test_hostile_keys_and_values_go_in_and_come_back_exactly(postgres_db: str) -> None:
    table = Table([n for n, _ in COLUMNS], [["0.1", "9007199254740993", key, "0"] for key in HOSTILE])
    with open_store(postgres_db) as store:
        store.put_shard(image="m", digest=DIGEST, run="r", shard=0, rows=validate.check(table, MODEL, HOSTILE),
                        columns=COLUMNS)
    with open_reader(postgres_db) as reader:
        [model] = reader.models()
        assert (model.image, model.digest, model.columns, model.rows) == ("m", DIGEST, COLUMNS, len(HOSTILE))
        found = reader.rows(DIGEST, [*HOSTILE, "absent", "\udc80", "nul\x00", HOSTILE[0].upper()])
        assert found == {k: {"y": 0.1, "n": 9007199254740993, "s": k, "b": False} for k in HOSTILE}
        assert reader.rows("sha256:" + "b" * 64, HOSTILE) == {}
    with pytest.raises(validate.InvalidOutput, match="NUL"):
        validate.check(Table([n for n, _ in COLUMNS], [["1", "1", "a\x00b", "1"]]), MODEL, ["k"])


def test_the_reader_cannot_write_and_credentials_never_show(postgres_db: str) -> None:
    store_run(postgres_db, "r", cut(KEYS[:10], 1), [0])
    with open_reader(postgres_db) as reader:
        conn = reader.connection  # type: ignore[attr-defined]
        with conn() as session, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.execute("DELETE FROM predictions")
    assert len(keys_stored(postgres_db)) == 10
    password = postgres_db.split(":")[2].split("@")[0]
    wrong = postgres_db.replace(password, "not-the-" + password)
    with pytest.raises(StackError) as caught:
        open_store(wrong)
    assert password not in str(caught.value) and "postgresql://postgres:***@127.0.0.1" in str(caught.value)
    with open_store(postgres_db) as store:
        opened: PredictionStore = store
        assert password not in opened.shown and opened.shown.startswith("postgresql://postgres:***@")


def test_a_role_that_may_not_create_the_tables_is_told_so_in_one_line(postgres_db: str) -> None:
    role = "weak_" + postgres_db.rsplit("/", 1)[1]  # roles are the server's: one of this test's own
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'weak-writer-password'")
    try:
        url = postgres_db.replace(postgres_db.split("@")[0], f"postgresql://{role}:weak-writer-password")
        with pytest.raises(StackError) as caught:
            open_store(url)
        message = str(caught.value)
        assert message.startswith(f"the prediction store postgresql://{role}:***@127.0.0.1:") and "\n" not in message
        assert "needs CREATE on the database's public schema" in message and "weak-writer-password" not in message
    finally:
        with psycopg.connect(postgres_db, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
