"""The store chosen by URL, its schema versions, the reader, and shards sized to the work (no server needed:
the DuckDB default, and the pure parts; PostgreSQL is in test_precalc_postgres.py)."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from stack_builder import secrets
from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError
from stack_builder.precalc import library as libraries
from stack_builder.precalc import schema, urls, validate
from stack_builder.precalc.reader import StoredModel, open_reader
from stack_builder.precalc.stores import open_store
from stack_builder.records import catalog
from stack_builder.spec.stack_spec import ModelSpec

DIGEST = "sha256:" + "c" * 64
COLUMNS = (("y", "float"), ("n", "integer"), ("s", "string"), ("b", "boolean"))
MODEL = ModelSpec(columns=COLUMNS, examples=Path("."))
HOSTILE = ["it's", 'say "hi"', "back\\slash", "\\N", "tab\there", "new\nline", "x" * 10240, "é☃😀", "e\u0301",
           "'; DROP TABLE predictions; --"]


def test_a_store_url_hides_its_password_wherever_it_is_shown() -> None:
    where = urls.parse("postgresql://writer:s3cret-pass-word@db.example:5432/hub?sslmode=require")
    assert where.kind is urls.StoreKind.POSTGRESQL
    assert where.shown == "postgresql://writer:***@db.example:5432/hub?sslmode=require"
    assert "s3cret" not in repr(where) and where.dsn.startswith("postgresql://writer:s3cret-pass-word@")
    assert "s3cret-pass-word" in secrets.known()  # redacted from logs and reports from now on
    assert where.hide("FATAL: password s3cret-pass-word rejected") == "FATAL: password *** rejected"
    query = urls.parse("postgres://db.example/hub?user=u&password=another-secret")
    assert query.shown == "postgresql://db.example/hub?user=u&password=%2A%2A%2A" and "another" not in query.shown
    assert urls.parse("duckdb:///srv/p.duckdb") == urls.StoreUrl(urls.StoreKind.DUCKDB, Path("/srv/p.duckdb"), "",
                                                                  "duckdb:///srv/p.duckdb")
    assert urls.parse("duckdb:rel/p.duckdb").path == Path("rel/p.duckdb")


@pytest.mark.parametrize("url, message", [
    ("mysql://root:hunter2-long@h/db", "--store mysql://root:***@h/db: not a store URL; give duckdb:///ABS"),
    ("postgresql://u:hunter2-long@h:99999/db", "--store postgresql://u:***@h:99999/db: not a PostgreSQL URL"),
    ("postgresql://u:hunter2-long@h:5432/", "--store postgresql://u:***@h:5432/: name one database"),
    ("duckdb://", "--store duckdb://: no file named"),
    ("/plain/path.duckdb", "--store /plain/path.duckdb: not a store URL"),
])
def test_a_bad_store_url_is_refused_naming_it_without_its_password(url: str, message: str) -> None:
    with pytest.raises(StackError) as caught:
        urls.parse(url)
    assert str(caught.value).startswith(message) and "hunter2" not in str(caught.value)


def put(url: str, keys: list[str], *, image: str = "m", run: str = "r", shard: int = 0) -> None:
    table = Table([n for n, _ in COLUMNS], [["0.1", "9007199254740993", key, "1"] for key in keys])
    with open_store(url) as store:
        store.ensure(COLUMNS, image)
        store.put_shard(image=image, digest=DIGEST, run=run, shard=shard, rows=validate.check(table, MODEL, keys),
                        columns=COLUMNS)


def test_the_duckdb_reader_lists_models_and_finds_exact_keys_read_only(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'p.duckdb'}"
    put(url, HOSTILE)
    with open_reader(url) as reader:
        assert reader.models() == [StoredModel("m", DIGEST, COLUMNS, len(HOSTILE))]
        found = reader.rows(DIGEST, [*HOSTILE, "absent", "\udc80", "nul\x00", "IT'S"])
        assert found == {k: {"y": 0.1, "n": 9007199254740993, "s": k, "b": True} for k in HOSTILE}
        assert reader.rows("sha256:" + "d" * 64, HOSTILE) == {} and reader.rows(DIGEST, []) == {}
        db = reader.db  # type: ignore[attr-defined]
        with pytest.raises(duckdb.Error, match="read-only"):
            db.execute("DELETE FROM predictions")
    with pytest.raises(StackError, match=r"no prediction store at duckdb://.*nothing\.duckdb: run `stack-builder"):
        with open_reader(f"duckdb://{tmp_path / 'nothing.duckdb'}"):
            pass


def test_an_older_duckdb_store_is_migrated_and_a_newer_one_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as db:  # what issue 16's release wrote: no models table, no version
        db.execute("CREATE TABLE predictions (image VARCHAR NOT NULL, digest VARCHAR NOT NULL, key VARCHAR NOT NULL, "
                   "y DOUBLE, n BIGINT, s VARCHAR, b BOOLEAN, PRIMARY KEY (digest, key))")
        db.execute("CREATE TABLE precalc_shards (digest VARCHAR NOT NULL, run VARCHAR NOT NULL, shard INTEGER NOT NULL, "
                   "rows INTEGER NOT NULL, stored VARCHAR NOT NULL, PRIMARY KEY (digest, run, shard))")
        db.execute("INSERT INTO predictions VALUES ('m', ?, 'old', 1.5, 2, 'x', false)", [DIGEST])
    with pytest.raises(StackError, match=r"schema version 1, older than this stack-builder's \(3\)"):
        with open_reader(f"duckdb://{path}"):
            pass
    with open_store(f"duckdb://{path}") as store:
        store.ensure(COLUMNS, "m")  # the digests stored before get their models row
    with open_reader(f"duckdb://{path}") as reader:
        assert reader.models() == [StoredModel("m", DIGEST, COLUMNS, 1)]
        assert reader.rows(DIGEST, ["old"]) == {"old": {"y": 1.5, "n": 2, "s": "x", "b": False}}
    with duckdb.connect(str(path)) as db:
        db.execute("UPDATE store_schema SET version = 4")
    for opening in (lambda: open_store(f"duckdb://{path}"), lambda: open_reader(f"duckdb://{path}").__enter__()):
        with pytest.raises(StackError) as caught:
            opening()
        assert f"the prediction store duckdb://{path} has schema version 4, newer than this stack-builder's (3)" \
            in str(caught.value)
    assert schema.SCHEMA_VERSION == 3


def test_shards_follow_the_library_and_a_target_size_up_to_the_matrix_limit() -> None:
    assert libraries.shard_count(150, 0, 10_000) == 1
    assert libraries.shard_count(2_000_000, 0, 10_000) == 200
    assert libraries.shard_count(2_000_000, 0, 1_000) == 256  # GitHub's matrix limit
    assert libraries.shard_count(20_001, 0, 10_000) == 3
    assert libraries.shard_count(150, 8, 10_000) == 8  # --shards, as before
    with pytest.raises(StackError, match="--shard-size 0: give a number of rows per shard"):
        libraries.shard_count(10, 0, 0)
    with pytest.raises(StackError, match="--shards -1"):
        libraries.shard_count(10, -1, 10)


def test_a_key_no_store_can_hold_and_bytes_that_are_not_utf8_are_refused_naming_the_line(tmp_path: Path) -> None:
    nul = tmp_path / "nul.csv"
    nul.write_text("id,x\nk1,1\nk\x002,2\n")
    with pytest.raises(StackError, match=r"nul.csv: line 3: the key \(id\) has a NUL character"):
        libraries.load(nul, "", ["x"])
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,x\nk1,1\ncaf\xe9,2\n")
    with pytest.raises(StackError, match="not UTF-8 CSV"):
        libraries.load(latin, "", ["x"])


def test_the_catalog_shows_rows_store_and_library_coverage_per_digest_without_credentials() -> None:
    secrets.remember("catalog-secret-pw")
    entry = {"coverage": {DIGEST: 1500}, "stores": {DIGEST: "postgresql://w:catalog-secret-pw@h/db"},
             "libraries": {DIGEST: {"library": "ref.csv", "rows": 2000, "covered": 1500}}}
    merged = catalog.merged({"m": {"digests": {"2024.1-main": DIGEST}}}, "m", entry)
    assert merged["m"]["stores"] == entry["stores"] and merged["m"]["digests"] == {"2024.1-main": DIGEST}
    assert catalog._store(merged["m"], DIGEST) == "` postgresql://w:***@h/db `"
    assert catalog._covered(merged["m"], DIGEST) == "1500/2000 (75.0%) of ` ref.csv `"
    assert catalog._covered(merged["m"], "sha256:other") == "–"
