"""Hostile YAML: the time to refuse a "billion laughs" spec (seven levels of nine aliases) and the size of the
message, side by side with loading the bundled spec.yml, in one run. Goal: refused within 1 s, message < 1 kB.

Usage: python benchmarks/bench_hostile_yaml.py   (no engine needed)
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]
from test_hostile_input import billion_laughs  # noqa: E402

from stack_builder.errors import SpecError  # noqa: E402
from stack_builder.spec.stack_spec import parse_spec  # noqa: E402


def timed(text: str) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        parse_spec(text, path=ROOT / "spec.yml", stack_dir=ROOT, check_files=False)
        size = 0
    except SpecError as exc:
        size = len(str(exc).encode())
    return time.perf_counter() - started, size


def main() -> int:
    bomb, real = billion_laughs(), (ROOT / "spec.yml").read_text()
    bombs = [timed(bomb) for _ in range(5)]
    reals = [timed(real) for _ in range(5)]
    bomb_s, real_s = statistics.median(t for t, _ in bombs), statistics.median(t for t, _ in reals)
    print("spec.yml loading, median of 5")
    print(f"  bundled spec.yml (valid):         {real_s * 1000:7.1f} ms")
    print(f"  billion laughs (refused):         {bomb_s * 1000:7.1f} ms, message {bombs[0][1]} bytes "
          f"(goal: < 1 s, < 1024 bytes); ratio to the bundled spec {bomb_s / real_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
