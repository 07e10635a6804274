"""Start-up cost: listing tasks against bare `import doit`, measured side by side in one run.

Each command runs in a fresh interpreter from the repository's folder (doit reads its pyproject.toml
there), interleaved round by round so that machine noise hits all of them alike; the figure is the
ratio of medians. Bytecode is cached as in a user's checkout: a PYTHONDONTWRITEBYTECODE in this
environment is dropped for the commands, and the uncounted first round writes __pycache__.

Goals: `doit list` takes at most 1.1x `python -c "import doit"`; `stack-builder list` at most 1.5x
(it also hands registry credentials over before doit starts). For scale, the same run lists a
trivial dodo.py with as many tasks (doit's own cost of listing, whatever the tasks import).

Usage: python benchmarks/bench_startup.py [rounds]   (no engine or registry needed)
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACK_BUILDER = Path(sys.executable).parent / "stack-builder"
BASE = "python -c 'import doit'"
COMMANDS = {
    BASE: [sys.executable, "-c", "import doit"],
    "doit list": [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(REPO), "list"],
    "stack-builder list": [str(STACK_BUILDER), "-d", str(REPO), "list"],
}
TRIVIAL = "doit list, trivial dodo.py"
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
GOALS = {"doit list": 1.1, "stack-builder list": 1.5}  # at most this many times BASE


def once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                   env=ENV)
    return time.perf_counter() - started


def trivial_dodo(folder: Path) -> Path:
    """A dodo.py with our task names, each a bare task: what listing costs in doit itself."""
    from stack_builder.apps import doit_tasks

    names = sorted(name for name in vars(doit_tasks) if name.startswith("task_"))
    body = "".join(f"def {name}():\n    return {{'actions': [], 'doc': {name!r}}}\n\n\n" for name in names)
    path = folder / "dodo.py"
    path.write_text(f"DOIT_CONFIG = {{'default_tasks': ['build'], 'verbosity': 2}}\n\n\n{body}")
    return path


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        COMMANDS[TRIVIAL] = [sys.executable, "-m", "doit", "-f", str(trivial_dodo(Path(tmp))), "list"]
        return measure(rounds)


def measure(rounds: int) -> int:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():
        once(command)  # warm the file cache and write the bytecode once, uncounted
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(once(command))
    base = statistics.median(times[BASE])
    print(f"start-up, median of {rounds} interleaved runs each")
    for name, values in times.items():
        print(f"  {name:<26} {statistics.median(values) * 1000:7.0f} ms")
    missed = 0
    for name, goal in GOALS.items():
        ratio = statistics.median(times[name]) / base
        missed += ratio > goal
        print(f"ratio {name} / import doit: {ratio:.2f}x (goal <= {goal}x)")
    print(f"ratio {TRIVIAL} / import doit: {statistics.median(times[TRIVIAL]) / base:.2f}x (doit's own cost)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
