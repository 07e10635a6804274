"""Batch precalculation on the bundled iris model over a generated 100,000-row library, side by side in one run.

1. `precalc --shards 8 --workers 1`: rows per second with one container at a time.
2. the same with `--workers 2` (this machine has 2 cores).
3. one container per row, the way a naive loop does it: `--sample 20 --shards 20 --workers 1` (20 containers of
   one row each), timed and extrapolated to the whole library.
4. resume: `--workers 2` stopped by SIGTERM once half the shards are stored, then the same command again;
   the second run's time, against a whole run.

Usage: python benchmarks/bench_precalc.py   (needs a running engine and the seeded debian base; builds the
bundled stack's iris-model into a registry of its own first, from BuildKit's cache when warm; ~10 min)
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from _stack import bundled_with_registry
from stacks import DODO, REPO, Stack

ROWS = 100_000
SHARDS = 8


def make_library(path: Path) -> None:
    source = (REPO / "images" / "iris-model" / "examples" / "input.csv").read_text().splitlines()
    header, rows = source[0], [r.split(",") for r in source[1:] if r]
    chooser = random.Random(7)
    with path.open("w") as out:
        out.write(f"id,{header}\n")
        for n in range(ROWS):
            row = chooser.choice(rows)
            jittered = [f"{float(v) + chooser.uniform(-0.2, 0.2):.2f}" for v in row]
            out.write(f"r{n}," + ",".join(jittered) + "\n")


def timed(stack: Stack, *args: str) -> float:
    started = time.perf_counter()
    result = stack.doit("precalc", "--image", "iris-model", *args, timeout=7200)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"precalc {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def interrupted_half_way(stack: Stack, args: list[str]) -> None:
    argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(stack.root), "precalc", "--image", "iris-model",
            *args]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "STACK_REGISTRY": str(stack.registry)})
    stored = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        stored += "rows stored" in line
        if stored == SHARDS // 2:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=600)


def main() -> int:
    with bundled_with_registry("bench-precalc-") as (tmp, stack):
        built = stack.doit("build", "--image", "iris-model", timeout=3600)
        if built.returncode != 0:
            raise SystemExit(f"the iris model did not build:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
        library = tmp / "library.csv"
        make_library(library)
        store = stack.root / "artifacts" / "precalc.duckdb"
        base = ["--library", str(library), "--shards", str(SHARDS)]

        one = timed(stack, *base, "--workers", "1")
        store.unlink()
        two = timed(stack, *base, "--workers", "2")
        store.unlink()
        per_row = timed(stack, "--library", str(library), "--sample", "20", "--shards", "20", "--workers", "1") / 20
        store.unlink()
        interrupted_half_way(stack, [*base, "--workers", "2"])
        resume = timed(stack, *base, "--workers", "2")
    naive = per_row * ROWS
    print(f"iris-model over {ROWS} rows, {SHARDS} shards (one container each); seconds, rows/s")
    print(f"  --workers 1:                      {one:7.1f}s  {ROWS / one:8.0f} rows/s")
    print(f"  --workers 2:                      {two:7.1f}s  {ROWS / two:8.0f} rows/s   (x{one / two:.2f})")
    print(f"  one container per row (20 timed): {per_row:7.2f}s a row -> {naive:9.0f}s for the library, "
          f"{1 / per_row:6.1f} rows/s")
    print(f"  sharded (--workers 2) / per row:  {two / naive:.5f}  ({naive / two:.0f}x faster)")
    print(f"  resume after SIGTERM at half way: {resume:7.1f}s   (a whole run: {two:.1f}s, ratio {resume / two:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
