"""`precalc` on the real engine and registry: a small model image over a generated library (issue 16, point 4).

Stored with exactly one row per key, looked up, exported; interrupted by SIGTERM and by a dead container,
then resumed without a duplicate or a loss; an invalid shard stored nowhere; each bad input refused
with nothing stored.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import duckdb
import pytest

from faultproxy import EngineLine
from stack_builder.precalc.reader import open_reader
from stacks import DODO, Stack

pytestmark = pytest.mark.integration

# y = 2x, one output row per input row; a row whose x is 13 is dropped (an invalid output for its shard); x
# in [5000, 6000) gets no y (an empty field, quoted as a one-column CSV must: an empty line is no row); x = 7777
# gets a y of 256 KiB (over the csv module's field limit).
PREDICT = """#!/bin/sh
sleep 1
awk -F, 'NR == 1 { print "y"; next } $1 == 13 { next } $1 >= 5000 && $1 < 6000 { print "\\"\\""; next }
         $1 == 7777 { s = "1"; while (length(s) <= 131072) s = s s; print s; next } { print $1 * 2 }' "$1" > "$2"
"""


@pytest.fixture(scope="module")
def doubler(tmp_path_factory: pytest.TempPathFactory, registry: str, test_base: str) -> Stack:
    stack = Stack(tmp_path_factory.mktemp("precalc") / "stack", registry)
    stack.write("spec.yml", """\
        images:
          doubler:
            image_name: ghcr.io/precalc/doubler
            model:
              columns: {y: float}
              fixed: true
          plain:
            image_name: ghcr.io/precalc/plain
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/doubler/Dockerfile", f"FROM {test_base}\nCOPY predict /bin/predict\n"
                                             "ENTRYPOINT [\"/bin/predict\"]\n")
    stack.write("images/doubler/predict", PREDICT).chmod(0o755)
    stack.write("images/doubler/examples/input.csv", "x\n1\n2.5\n")
    stack.write("images/doubler/examples/output.csv", "y\n2\n5\n")
    stack.write("images/plain/Dockerfile", f"FROM {test_base}\n")
    stack.commit("a model")
    result = stack.doit("build")
    assert result.returncode == 0, result.stdout + result.stderr
    return stack


def library(path: Path, rows: int, *, extra: str = "", start: int = 1000) -> Path:
    lines = ["id,x" + extra] + [f"k{n},{start + n}" + ("," if extra else "") for n in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(stack: Stack) -> list[tuple[str, str, float]]:
    with duckdb.connect(str(stack.root / "artifacts" / "precalc.duckdb"), read_only=True) as db:
        return [(str(d), str(k), float(y)) for d, k, y in db.execute(
            "SELECT digest, key, y FROM predictions ORDER BY key").fetchall()]


def reset(stack: Stack) -> None:
    (stack.root / "artifacts" / "precalc.duckdb").unlink(missing_ok=True)


def test_precalculation_is_stored_once_per_key_looked_up_and_exported(doubler: Stack, tmp_path: Path) -> None:
    reset(doubler)
    lib = library(tmp_path / "lib.csv", 300)
    result = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--shards", "6", "--workers", "2",
                          "--export", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored now: 300 rows in 6 shard(s)" in result.stdout and "rows/s" in result.stdout
    rows = stored(doubler)
    assert len(rows) == 300 and len({(d, k) for d, k, _ in rows}) == 300
    assert {k: y for _, k, y in rows} == {f"k{n}": 2.0 * (1000 + n) for n in range(300)}
    assert len({d for d, _, _ in rows}) == 1 and rows[0][0].startswith("sha256:")

    looked = doubler.doit("precalc", "--image", "doubler", "--lookup", "k7", "--lookup", "nope")
    assert looked.returncode == 0, looked.stderr
    assert f"{rows[0][0]},k7,2014.0" in looked.stdout and "# not stored: nope" in looked.stdout
    models = (doubler.root / "wiki" / "Models.md").read_text()  # the catalog counts what is stored
    assert f"| 2024.1-main | ` {rows[0][0]} ` | 300 |" in models
    parquet = tmp_path / "out" / "predictions-doubler.parquet"
    counted = duckdb.sql(f"SELECT count(*) FROM read_parquet('{parquet}')")
    assert counted is not None and counted.fetchall() == [(300,)]

    # The same command again: every shard is stored, nothing runs, nothing is added.
    again = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--shards", "6")
    assert "already stored (skipped): 6 shard(s)" in again.stdout and "stored now: 0 rows" in again.stdout
    # Loading the exported Parquet (as a CI fan-out's last job loads its shards' files) into an empty store.
    reset(doubler)
    loaded = doubler.doit("precalc", "--image", "doubler", "--load", str(tmp_path / "out"))
    assert "loaded 300 new rows" in loaded.stdout, loaded.stdout + loaded.stderr
    assert {k: y for _, k, y in stored(doubler)} == {k: y for _, k, y in rows}

    # A reproducible sample: the same 40 rows each time.
    keys = []
    for _ in range(2):
        reset(doubler)
        sample = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--sample", "40", "--shards", "2")
        assert sample.returncode == 0 and "stored now: 40 rows in 2 shard(s)" in sample.stdout, sample.stdout
        keys.append(sorted(k for _, k, _ in stored(doubler)))
    assert keys[0] == keys[1] and len(keys[0]) == 40 and keys[0] != sorted(f"k{n}" for n in range(40))


def predictions(stack: Stack) -> dict[str, float | None]:
    with duckdb.connect(str(stack.root / "artifacts" / "precalc.duckdb"), read_only=True) as db:
        return {str(k): y for k, y in db.execute("SELECT key, y FROM predictions").fetchall()}


@pytest.mark.parametrize("shards", [1, 2])
def test_the_all_null_rule_is_judged_on_the_whole_run_whatever_the_shards(doubler: Stack, tmp_path: Path,
                                                                          shards: int) -> None:
    reset(doubler)
    half = library(tmp_path / "half.csv", 20, start=5990)  # y is null for x < 6000: the first 10 rows
    result = doubler.doit("precalc", "--image", "doubler", "--library", str(half), "--shards", str(shards))
    assert result.returncode == 0, result.stdout + result.stderr
    assert predictions(doubler) == {f"k{n}": None if n < 10 else 2.0 * (5990 + n) for n in range(20)}
    reset(doubler)
    none = library(tmp_path / "none.csv", 20, start=5000)  # y is null in every row
    result = doubler.doit("precalc", "--image", "doubler", "--library", str(none), "--shards", str(shards))
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert "REFUSED run: column y is null in every row of the run: the model predicts nothing there; nothing of " \
           "it is stored" in result.stdout, result.stdout
    assert predictions(doubler) == {}


def test_a_field_over_128_kib_fails_its_shard_only_and_a_rerun_is_not_stuck(doubler: Stack, tmp_path: Path) -> None:
    reset(doubler)
    lib = library(tmp_path / "lib.csv", 20, start=7770)  # x = 7777: in shard 0
    for attempt in range(2):
        result = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--shards", "2")
        assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert "FAILED shard 0: the model's output is not CSV precalc can read (field larger than field limit " \
               "(131072); a value may have at most 128 KiB)" in result.stdout, result.stdout + result.stderr
        assert ("already stored (skipped): 1 shard(s)" in result.stdout) == (attempt == 1)
        assert predictions(doubler) == {f"k{n}": 2.0 * (7770 + n) for n in range(10, 20)}


def test_an_interrupted_run_resumes_without_a_duplicate_or_a_loss(doubler: Stack, tmp_path: Path,
                                                                   engine: docker.DockerClient) -> None:
    reset(doubler)
    lib = library(tmp_path / "lib.csv", 240)
    argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(doubler.root), "precalc", "--image", "doubler",
            "--library", str(lib), "--shards", "8", "--workers", "1"]
    env = {**os.environ, "STACK_REGISTRY": str(doubler.registry)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:  # SIGTERM once two shards are stored
        seen.append(line)
        if sum("rows stored" in s for s in seen) == 2:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert "interrupted by SIGTERM" in out
    first = stored(doubler)
    assert 60 <= len(first) < 240 and len(first) % 30 == 0  # whole shards only
    assert not engine.containers.list(all=True, filters={"ancestor": "ghcr.io/precalc/doubler"})

    # A container killed mid-shard: that shard fails (stored nowhere), the others are stored.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = False
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        try:
            for container in engine.containers.list(filters={"label": "io.stack-builder.run"}):
                # this run's model, by its registry (each pytest-xdist worker has its own)
                names = container.image.tags + container.image.attrs.get("RepoDigests", [])
                if f"{doubler.registry}/precalc/doubler" in " ".join(names):
                    container.kill()
                    killed = True
                    break
        except docker.errors.APIError:  # a shard's container ended between the listing and the kill: the next
            pass
        time.sleep(0.2)
    out, err = proc.communicate(timeout=180)
    assert killed and proc.returncode != 0 and "FAILED shard" in out, out + err

    # The same command once more completes it: exactly one row per key.
    done = doubler.doit("precalc", *argv[argv.index("--image"):])
    assert done.returncode == 0, done.stdout + done.stderr
    rows = stored(doubler)
    assert len(rows) == 240 and {k for _, k, _ in rows} == {f"k{n}" for n in range(240)}
    assert {k: y for _, k, y in rows} == {f"k{n}": 2.0 * (1000 + n) for n in range(240)}


def test_an_invalid_shard_is_reported_and_stored_nowhere(doubler: Stack, tmp_path: Path) -> None:
    reset(doubler)
    lib = library(tmp_path / "lib.csv", 40, start=0)  # x = 0..39: the shard holding x = 13 loses a row
    result = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--shards", "4")
    assert result.returncode != 0
    assert "FAILED shard 1: invalid output, not stored: 9 output rows for 10 input rows" in result.stdout
    keys = {k for _, k, _ in stored(doubler)}
    assert keys == {f"k{n}" for n in range(40)} - {f"k{n}" for n in range(10, 20)}


@pytest.mark.parametrize("case, args, says", [
    ("missing library", ["--library", "nowhere.csv"], "no such file"),
    ("missing key column", ["--key", "nope"], "--key nope: no such column"),
    ("duplicate keys", ["--library", "dup.csv"], "appear more than once, e.g. k1"),
    ("no model input column", ["--library", "other.csv"], "lacks the column(s) x"),
    ("not a model image", ["--image", "plain"], "--image plain is not a model image"),
])
def test_bad_input_is_refused_and_nothing_is_stored(doubler: Stack, tmp_path: Path, case: str, args: list[str],
                                                    says: str) -> None:
    reset(doubler)
    library(tmp_path / "lib.csv", 5)
    (tmp_path / "dup.csv").write_text("id,x\nk1,1\nk2,2\nk1,3\n")
    (tmp_path / "other.csv").write_text("id,z\nk1,1\n")
    given = {"--image": "doubler", "--library": str(tmp_path / "lib.csv")}
    for flag, value in zip(args[::2], args[1::2]):
        given[flag] = str(tmp_path / value) if flag == "--library" else value
    result = doubler.doit("precalc", *[x for pair in given.items() for x in pair])
    assert result.returncode != 0, case
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (doubler.root / "artifacts" / "precalc.duckdb").exists() or stored(doubler) == []


def test_a_dead_engine_fails_the_shards_left_and_the_same_command_resumes(
        doubler: Stack, tmp_path: Path, engine: docker.DockerClient) -> None:
    reset(doubler)
    lib = library(tmp_path / "lib.csv", 160)
    args = ["precalc", "--image", "doubler", "--library", str(lib), "--shards", "8", "--workers", "1"]
    line = EngineLine()  # the engine, reached through a line this test can cut, as when the engine dies
    env = {**os.environ, "STACK_REGISTRY": str(doubler.registry), "DOCKER_HOST": f"tcp://{line.address}"}
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(doubler.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    assert proc.stderr is not None
    for text in proc.stderr:
        seen.append(text)
        if sum("rows stored" in s for s in seen) == 3:
            line.cut()
            break
    out, err = proc.communicate(timeout=180)
    try:
        assert proc.returncode not in (0, 143) and "FAILED shard" in out, out + err
        assert "Traceback" not in out + err
        first = stored(doubler)
        assert 60 <= len(first) < 160 and len(first) % 20 == 0  # whole shards only
        done = doubler.doit(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "already stored (skipped): " in done.stdout
        rows = stored(doubler)
        assert len(rows) == 160 and {k: y for _, k, y in rows} == {f"k{n}": 2.0 * (1000 + n) for n in range(160)}
    finally:  # the containers the cut line could not remove
        # the low-level listing, as other workers' containers may end between a listing and an inspect
        for listed in engine.api.containers(all=True, filters={"label": "io.stack-builder.run"}):
            if f"{doubler.registry}/precalc/doubler" in listed.get("Image", ""):
                with contextlib.suppress(docker.errors.NotFound):
                    engine.api.remove_container(listed["Id"], force=True)


def test_a_postgresql_store_is_written_by_url_resumed_and_shown_without_its_password(
        doubler: Stack, tmp_path: Path, postgres_db: str) -> None:
    password = postgres_db.split(":")[2].split("@")[0]
    lib = library(tmp_path / "lib.csv", 90)
    planned = doubler.doit("precalc", "--image", "doubler", "--library", str(lib), "--shard-size", "40", "--matrix")
    assert planned.returncode == 0 and json.loads(planned.stdout) == {"shards": 3, "shard": [0, 1, 2]}, planned.stderr
    args = ["precalc", "--image", "doubler", "--library", str(lib), "--shard-size", "40", "--store", postgres_db]
    first = doubler.doit(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 shard(s), store postgresql://postgres:***@127.0.0.1:" in first.stdout
    assert "stored now: 90 rows" in first.stdout
    with open_reader(postgres_db) as reader:
        [model] = reader.models()
        assert (model.image, model.columns, model.rows) == ("doubler", (("y", "float"),), 90)
        assert reader.rows(model.digest, ["k0", "k89", "k90"]) == {"k0": {"y": 2000.0}, "k89": {"y": 2178.0}}
    again = doubler.doit(*args)
    assert again.returncode == 0 and "already stored (skipped): 3 shard(s)" in again.stdout, again.stdout
    empty = doubler.doit(*args, "--only-shard", "5")  # a fan-out's job past the last shard: a success, no rows
    assert empty.returncode == 0 and "this shard is empty" in empty.stdout, empty.stdout + empty.stderr
    looked = doubler.doit("precalc", "--image", "doubler", "--store", postgres_db, "--lookup", "k1")
    assert looked.returncode == 0 and f"{model.digest},k1,2002.0" in looked.stdout, looked.stdout + looked.stderr
    models = (doubler.root / "wiki" / "Models.md").read_text()
    assert "postgresql://postgres:***@127.0.0.1:" in models and "90/90 (100.0%) of ` lib.csv `" in models, models
    for text in (first.stdout, first.stderr, again.stdout, empty.stdout, models,
                 (doubler.root / "wiki" / "_data" / "models.json").read_text()):
        assert password not in text
