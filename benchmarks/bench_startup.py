"""Start-up cost: listing tasks against bare `import doit`, measured side by side in one run.

Each command runs in a fresh interpreter, interleaved round by round so that machine noise hits
all of them alike; the figure is the ratio of medians. Goal: `doit list` and `stack-builder list`
take at most 1.5x `python -c "import doit"`.

Usage: python benchmarks/bench_startup.py [rounds]   (no engine or registry needed)
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACK_BUILDER = Path(sys.executable).parent / "stack-builder"
COMMANDS = {
    "python -c 'import doit'": [sys.executable, "-c", "import doit"],
    "doit list": [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(REPO), "list"],
    "stack-builder list": [str(STACK_BUILDER), "-d", str(REPO), "list"],
}
GOAL = 1.5


def once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():
        once(command)  # warm the file cache once, uncounted
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(once(command))
    base = statistics.median(times["python -c 'import doit'"])
    print(f"start-up, median of {rounds} interleaved runs each")
    worst = 0.0
    for name, values in times.items():
        ratio = statistics.median(values) / base
        worst = max(worst, ratio)
        print(f"  {name:<26} {statistics.median(values) * 1000:7.0f} ms   {ratio:.2f}x import doit")
    print(f"  worst ratio {worst:.2f} (goal <= {GOAL})")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
