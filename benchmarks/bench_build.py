"""Benchmarks for `doit build`, measured side by side in one run on the real engine and registry.

1. No-change latency: `doit build` when nothing changed, against its 3 s goal (and, for scale,
   against `doit list`, which only starts doit).
2. Parallel scheduling: a stack dominated by `RUN sleep`, with two independent branches, built
   with --workers 2. The critical path is the longest parent->child chain of the per-image times
   the build itself reports (build + test + push); the goal is wall <= 1.15 x critical path.

Usage: python benchmarks/bench_build.py   (needs a running engine; starts its own registry)
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent.parent)]
from stacks import Stack, ensure_test_base, running_registry, small_stack  # noqa: E402

# image -> (parent, seconds of sleep); two branches: a1 -> a2 (long) and b1 (shorter)
SLEEP_STACK = {"root": (None, 3), "a1": ("root", 6), "a2": ("a1", 6), "b1": ("root", 8), "b2": ("b1", 2)}


def timed(stack: Stack, *args: str) -> float:
    started = time.perf_counter()
    result = stack.doit(*args)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"doit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def no_change(root: Path, registry: str, base: str) -> None:
    stack = Stack(root / "nochange", registry)
    small_stack(stack, base, namespace="bench-nochange")
    timed(stack, "build", "--all")
    runs = [timed(stack, "build") for _ in range(5)]
    baseline = [timed(stack, "list") for _ in range(5)]
    median, base_median = statistics.median(runs), statistics.median(baseline)
    print("no-change build")
    print(f"  doit build, nothing changed: median {median:.2f}s of {len(runs)} runs (goal <= 3 s)")
    print(f"  ratio to goal: {median / 3.0:.2f}   ratio to bare `doit list` ({base_median:.2f}s): "
          f"{median / base_median:.2f}")


def sleep_stack(root: Path, registry: str, base: str) -> None:
    stack = Stack(root / "sleep", registry)
    nonce = uuid.uuid4().hex  # a fresh build arg defeats the layer cache, so every sleep runs
    lines = ["images:"]
    for name, (parent, _) in SLEEP_STACK.items():
        lines += [f"  {name}:", f"    image_name: bench/{name}", f"    build_args: {{NONCE: '{nonce}'}}"]
        if parent:
            lines.append(f"    depend_on: {parent}")
    lines += ["tag:", "  prefix: '2024.1'"]
    stack.write("spec.yml", "\n".join(lines) + "\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    for name, (parent, seconds) in SLEEP_STACK.items():
        source = f"FROM {base}" if parent is None else "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}"
        stack.write(f"images/{name}/Dockerfile", f"{source}\nARG NONCE\nRUN echo $NONCE && sleep {seconds}\n")
        stack.write(f"images/{name}/test/test_{name}.py",
                    "def test_runs(container):\n    assert container.run(['true'])[0] == 0\n")
    stack.commit("sleep stack")
    wall = timed(stack, "build", "--all", "--workers", "2")
    images = stack.report()["images"]
    durations = {name: images[name]["duration_s"] for name in SLEEP_STACK}

    def chain(name: str) -> float:
        parent = SLEEP_STACK[name][0]
        return durations[name] + (chain(parent) if parent else 0.0)

    critical = max(chain(name) for name in SLEEP_STACK)
    serial = sum(durations.values())
    print("parallel scheduling (two independent branches, --workers 2)")
    print("  per-image seconds: " + ", ".join(f"{n} {d:.1f}" for n, d in durations.items()))
    print(f"  wall {wall:.1f}s, critical path {critical:.1f}s, sum of all images {serial:.1f}s")
    print(f"  ratio wall / critical path: {wall / critical:.3f} (goal <= 1.15); "
          f"wall / serial sum: {wall / serial:.3f}")


def main() -> int:
    binary = shutil.which("docker-registry")
    if not binary:
        raise SystemExit("docker-registry is not installed: bash setup.sh env")
    base = ensure_test_base(docker.from_env())
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, running_registry(binary, Path(tmp)) as registry:
        no_change(Path(tmp), registry, base)
        sleep_stack(Path(tmp), registry, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
