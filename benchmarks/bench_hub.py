"""The prediction store as a model hub's, measured side by side in one run, on PostgreSQL and on DuckDB.

1. Bulk load rows/s of a generated 2,000,000-key store with 4 output columns (string, float, integer,
   boolean), in shards of 100,000 rows through the store's own write path (PostgreSQL: COPY), against
   Ersilia's 65 rows/s into DynamoDB (100,000 rows in 1,547 s). Goal: at least 50,000 rows/s.
2. Lookup of 1,000 random keys through the API (`POST /models/IMAGE/predict` to `stack-builder serve` in a
   process of its own, over HTTP, the answer parsed), wall time: the first request, and the median of 20. Against Ersilia's 1-5 s
   target. Goal: at most 0.2 s.
3. On 100,000-key stores whose outputs are 200 floats, then 2,048 integers (as isaura measured): lookups per
   second for 10,000 random keys, through the API (the median of 3 requests; values as objects, then as
   lists, the store's own text passed on) and through
   the reader alone, against isaura's published 9,723 and 626 rows/s. Goal: ahead of both.

PostgreSQL: the server `setup.sh` started (STACK_TEST_POSTGRES), else a throwaway cluster of this run's own;
the API reads through a role of its own that cannot write, as `serve` does.

Usage: python benchmarks/bench_hub.py [--keys 2000000] [--wide-keys 100000] [--only postgresql|duckdb]
(about 7 minutes on 2 cores with the defaults; loading the 2,048-column stores is the slow part)
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import _stack  # noqa: F401  (puts tests/ and scripts/ on the path)
import httpx
import psycopg
from pgserver import admin_url, fresh_database, running_postgres

from stack_builder.precalc import urls
from stack_builder.precalc.reader import PredictionReader, open_reader
from stack_builder.precalc.stores import open_store
from stack_builder.precalc.validate import Rows
from stack_builder.serving import roles
from stacks import STACK_BUILDER

ROUNDS = 3  # requests of 10,000 keys per figure (different keys each), the median taken
SHARD = 100_000  # rows per transaction, as one shard job stores them
FEW = [("species", "string"), ("probability", "float"), ("petals", "integer"), ("toxic", "boolean")]
FLOATS = [(f"f{n}", "float") for n in range(200)]
INTEGERS = [(f"i{n}", "integer") for n in range(2048)]
DIGEST = "sha256:" + hashlib.sha256(b"bench-hub").hexdigest()
ERSILIA_LOAD, ERSILIA_LOOKUP, ISAURA_FLOATS, ISAURA_INTEGERS = 65.0, (1.0, 5.0), 9_723.0, 626.0
READER_PASSWORD = "bench-reader-" + "r" * 20
UrlsFor = Callable[[str], ContextManager[tuple[str, str]]]  # a store's name -> (writer URL, reader URL) of a fresh one


def key(n: int) -> str:
    """An InChIKey-shaped key (27 characters), the same for the same n."""
    digest = hashlib.sha1(n.to_bytes(8, "little")).hexdigest().upper()
    return f"{digest[:14]}-{digest[14:24]}-N"


def rows(start: int, count: int, columns: list[tuple[str, str]], chooser: random.Random) -> Rows:
    """Rows ``start``.. with random values: 64 random rows, repeated (drawing 200,000,000 integers one by one
    would take longer than storing them)."""
    kinds = [kind for _, kind in columns]
    make: dict[str, Callable[[int], Any]] = {"string": lambda n: f"class-{n % 3}",
                                             "float": lambda n: chooser.random(),
                                             "integer": lambda n: chooser.randrange(-2 ** 40, 2 ** 40),
                                             "boolean": lambda n: n % 2 == 0}
    pool = [[make[kind](n) for kind in kinds] for n in range(64)]
    typed = [pool[n % 64] for n in range(start, start + count)]
    return Rows([key(n) for n in range(start, start + count)], typed, {name: count for name, _ in columns})


def load(url: str, image: str, total: int, columns: list[tuple[str, str]]) -> float:
    """Rows per second storing ``total`` generated rows, a shard (one transaction) at a time; generating
    them is not counted."""
    chooser, spent = random.Random(7), 0.0
    with open_store(url) as store:
        store.ensure(columns, image)
        for start in range(0, total, SHARD):
            part = rows(start, min(SHARD, total - start), columns, chooser)
            began = time.perf_counter()
            store.put(image, DIGEST, [part], columns)
            spent += time.perf_counter() - began
    return total / spent


def api_lookups(base: str, image: str, total: int, count: int, repeats: int, shape: str = "object") -> list[float]:
    """Wall seconds of ``repeats`` requests for ``count`` random stored keys each, the answer parsed."""
    chooser, times = random.Random(11), []
    with httpx.Client(base_url=base, timeout=600) as client:
        for _ in range(repeats):
            keys = [key(chooser.randrange(total)) for _ in range(count)]
            began = time.perf_counter()
            answer = client.post(f"/models/{image}/predict", json={"keys": keys, "digest": DIGEST, "values": shape})
            found = answer.json()["found"]
            times.append(time.perf_counter() - began)
            if answer.status_code != 200 or found != count:
                raise SystemExit(f"lookup failed: {answer.status_code} {answer.text[:300]}")
    return times


def reader_lookups(reader: PredictionReader, total: int, count: int) -> float:
    chooser = random.Random(13)
    keys = [key(chooser.randrange(total)) for _ in range(count)]
    began = time.perf_counter()
    found = reader.rows(DIGEST, keys)
    spent = time.perf_counter() - began
    if len(found) != len(set(keys)):
        raise SystemExit(f"the reader found {len(found)} of {len(set(keys))} keys")
    return len(keys) / spent


@contextlib.contextmanager
def serving(url: str, stack: Path) -> Iterator[tuple[str, PredictionReader, float]]:
    """`stack-builder serve` on the store ``url``, in a process of its own as users run it (its JSON access log
    thrown away); yields its URL, a reader of this process's own, and the seconds that reader took to list
    the models (rows per digest), as the server does before its first request."""
    with open_reader(url) as reader:
        began = time.perf_counter()
        reader.models()
        listed = time.perf_counter() - began
        env = {name: value for name, value in os.environ.items() if not name.startswith("STACK_REGISTRY")}
        proc = subprocess.Popen([str(STACK_BUILDER), "-d", str(stack), "serve", "--port", "0", "--store", url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            base = _listening(proc)
            drain = threading.Thread(target=proc.stderr.read if proc.stderr else None, daemon=True)
            drain.start()
            yield base, reader, listed
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)


def _listening(proc: subprocess.Popen[str]) -> str:
    """The base URL the server's log names once it listens."""
    seen: list[str] = []
    for line in proc.stderr or ():
        seen.append(line)
        if " on http://" in line:
            return line.rsplit(" on ", 1)[1].split()[0]
    raise SystemExit("stack-builder serve did not start:\n" + "".join(seen[-30:]))


def a_stack(folder: Path) -> Path:
    """A stack for `serve` to run in (`init --model`); the models it answers for come from the store."""
    subprocess.run([str(STACK_BUILDER), "-d", str(folder), "init", "--name", "base", "--model"], check=True,
                   capture_output=True)
    return folder


@dataclass
class Figures:
    store: str
    load_rows_s: float = 0.0
    models_s: float = 0.0  # reading the models list (rows per digest), once at start-up
    first_1000_s: float = 0.0
    median_1000_s: float = 0.0
    load_wide: dict[str, float] = field(default_factory=dict)
    api: dict[str, float] = field(default_factory=dict)  # rows/s for 10,000 keys, per output shape
    api_lists: dict[str, float] = field(default_factory=dict)  # the same, asking "values": "list"
    direct: dict[str, float] = field(default_factory=dict)


def measure(store: str, url_for: UrlsFor, keys: int, wide_keys: int, stack: Path) -> Figures:
    """The figures of one store; ``url_for(name)`` gives (writer URL, reader URL) of a fresh store."""
    figures = Figures(store)
    with url_for("few") as (writer, reader):
        print(f"[{store}] loading {keys:,} keys x {len(FEW)} columns ...", flush=True)
        figures.load_rows_s = load(writer, "hub-model", keys, FEW)
        with serving(reader, stack) as (base, _, figures.models_s):
            times = api_lookups(base, "hub-model", keys, 1000, 21)
        figures.first_1000_s, figures.median_1000_s = times[0], statistics.median(times[1:])
    for shape, columns in (("200 floats", FLOATS), ("2,048 integers", INTEGERS)):
        with url_for(shape.split()[1]) as (writer, reader):
            print(f"[{store}] loading {wide_keys:,} keys x {shape} ...", flush=True)
            figures.load_wide[shape] = load(writer, "wide-model", wide_keys, columns)
            with serving(reader, stack) as (base, opened, _):
                api_lookups(base, "wide-model", wide_keys, 10, 1)
                figures.api[shape] = 10_000 / statistics.median(api_lookups(base, "wide-model", wide_keys, 10_000,
                                                                            ROUNDS))
                figures.api_lists[shape] = 10_000 / statistics.median(
                    api_lookups(base, "wide-model", wide_keys, 10_000, ROUNDS, "list"))
                figures.direct[shape] = reader_lookups(opened, wide_keys, 10_000)
    return figures


def postgresql_urls(admin: str) -> UrlsFor:
    @contextlib.contextmanager
    def url_for(name: str) -> Iterator[tuple[str, str]]:
        with fresh_database(admin) as writer:
            role = "bench_" + writer.rsplit("/", 1)[1]
            roles.create_reader(urls.parse(writer), role, READER_PASSWORD)
            try:
                yield writer, f"postgresql://{role}:{READER_PASSWORD}@{writer.split('@', 1)[1]}"
            finally:
                with psycopg.connect(writer, autocommit=True) as conn:
                    conn.execute(f'DROP OWNED BY "{role}"')
                    conn.execute(f'DROP ROLE "{role}"')
    return url_for


def duckdb_urls(folder: Path) -> UrlsFor:
    @contextlib.contextmanager
    def url_for(name: str) -> Iterator[tuple[str, str]]:
        path = folder / f"{name}.duckdb"
        yield f"duckdb://{path}", f"duckdb://{path}"
        path.unlink(missing_ok=True)
    return url_for


def report(results: list[Figures], keys: int, wide_keys: int) -> None:
    names = [f.store for f in results]
    head = f"{'figure':<60}" + "".join(f"{n:>14}" for n in names) + f"  {'against':<28}goal"
    print("\n" + head + "\n" + "-" * len(head))

    def line(what: str, values: list[str], against: str, goal: str) -> None:
        print(f"{what:<60}" + "".join(f"{v:>14}" for v in values) + f"  {against:<28}{goal}")

    line(f"bulk load, {keys:,} keys x 4 columns (rows/s)", [f"{f.load_rows_s:,.0f}" for f in results],
         f"Ersilia {ERSILIA_LOAD:.0f} rows/s", ">= 50,000 rows/s")
    line("  x Ersilia", [f"{f.load_rows_s / ERSILIA_LOAD:,.0f}x" for f in results], "", "")
    line(f"models list at start-up, {keys:,} keys (s)", [f"{f.models_s:.3f}" for f in results], "", "")
    line("1,000 random keys via the API, first (s)", [f"{f.first_1000_s:.3f}" for f in results],
         f"Ersilia {ERSILIA_LOOKUP[0]:.0f}-{ERSILIA_LOOKUP[1]:.0f} s", "<= 0.2 s")
    line("1,000 random keys via the API, median of 20 (s)", [f"{f.median_1000_s:.3f}" for f in results], "", "")
    line("  faster than Ersilia's 1 s by", [f"{1 / f.median_1000_s:,.0f}x" for f in results], "", "")
    for shape, isaura in (("200 floats", ISAURA_FLOATS), ("2,048 integers", ISAURA_INTEGERS)):
        line(f"bulk load, {wide_keys:,} keys x {shape} (rows/s)", [f"{f.load_wide[shape]:,.0f}" for f in results],
             "", "")
        line(f"10,000 lookups, {shape}, via the API (rows/s)", [f"{f.api[shape]:,.0f}" for f in results],
             f"isaura {isaura:,.0f} rows/s", "ahead")
        line("  x isaura", [f"{f.api[shape] / isaura:.1f}x" for f in results], "", "")
        line(f"10,000 lookups, {shape}, API, values as lists (rows/s)", [f"{f.api_lists[shape]:,.0f}" for f in results],
             f"isaura {isaura:,.0f} rows/s", "ahead")
        line("  x isaura", [f"{f.api_lists[shape] / isaura:.1f}x" for f in results], "", "")
        line(f"10,000 lookups, {shape}, reader alone (rows/s)", [f"{f.direct[shape]:,.0f}" for f in results],
             f"isaura {isaura:,.0f} rows/s", "ahead")
        line("  x isaura", [f"{f.direct[shape] / isaura:.1f}x" for f in results], "", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2_000_000, help="keys of the store of 4 columns")
    parser.add_argument("--wide-keys", type=int, default=100_000, help="keys of the 200- and 2,048-column stores")
    parser.add_argument("--only", choices=["postgresql", "duckdb"], help="measure one store only")
    args = parser.parse_args()
    results: list[Figures] = []
    with contextlib.ExitStack() as stack:
        stack_folder = a_stack(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hub-stack-"))))
        if args.only != "duckdb":
            admin = admin_url() or stack.enter_context(running_postgres())
            results.append(measure("PostgreSQL", postgresql_urls(admin), args.keys, args.wide_keys, stack_folder))
        if args.only != "postgresql":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hub-")))
            results.append(measure("DuckDB", duckdb_urls(folder), args.keys, args.wide_keys, stack_folder))
    report(results, args.keys, args.wide_keys)


if __name__ == "__main__":
    main()
