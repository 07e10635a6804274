"""Planning at a model hub's scale: `stack-builder plan` on generated stacks of 300 and 3,000 images.

Each stack has random parents (a fixed seed, so every run plans the same stack), one Dockerfile per
image and a fifth of its images on two platforms, in a temporary git repository. Measured side by
side in one run, each the median of ``--runs`` runs of the command itself (a subprocess, as a user
or CI runs it):

- ``plan --all``: every image is built, so the registry is asked nothing but its API root;
- ``plan`` against an empty local registry: which images does it lack (all of them);
- ``plan`` against a full local registry (every image under <prefix>-main): nothing to build.

Goals (issue 23): ``plan --all`` <= 1.5 s and ``plan`` with lookups <= 3 s at 3,000 images; growth from
300 to 3,000 images no worse than linear (a time ratio of at most about 10).

Usage: python benchmarks/bench_plan_scale.py [--sizes 300 3000] [--runs 3] [--no-registry] [--keep DIR]
(``--keep DIR`` writes the stacks there and leaves them, e.g. to profile one:
``python -m cProfile -s cumtime .venv/bin/stack-builder -d DIR/stack-3000 plan --all``).
Starts its own registries (docker-registry); no engine needed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]
from stacks import Stack, running_registry  # noqa: E402

from stack_builder.registry.client import RegistryClient  # noqa: E402

SEED = 23  # the number: any fixed seed gives the same stack on every run
PREFIX = "2024.1"
ROOTS = 3  # the first images have no parent; every later one picks any earlier image
TWO_PLATFORMS = 0.2  # share of the images (under two-platform parents) built for arm64 too
STACK_BUILDER = Path(sys.executable).parent / "stack-builder"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def name_of(index: int) -> str:
    return f"m{index:05d}"


def generate(root: Path, images: int, *, seed: int = SEED) -> Stack:
    """A committed stack of ``images`` images with random parents (``seed`` fixes them)."""
    rng = random.Random(seed)
    stack = Stack(root, None)
    lines = ["images:"]
    two: set[int] = set()
    for i in range(images):
        parent = rng.randrange(i) if i >= ROOTS else None
        lines += [f"  {name_of(i)}:", f"    image_name: ghcr.io/hub/{name_of(i)}"]
        if parent is not None:
            lines.append(f"    depend_on: {name_of(parent)}")
        # A child can only be built for arm64 when its parent is: two-platform images form subtrees.
        if (parent is None or parent in two) and rng.random() < TWO_PLATFORMS * 2:
            two.add(i)
            lines += ["    platforms: [linux/amd64, linux/arm64]"]
        dockerfile = "FROM busybox\n" if parent is None else "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        stack.write(f"images/{name_of(i)}/Dockerfile", dockerfile + f"RUN echo {i} > /id\n")
    lines += ["tag:", f'  prefix: "{PREFIX}"']
    stack.write("spec.yml", "\n".join(lines) + "\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.commit("generated")
    return stack


def populate(host: str, images: int) -> None:
    """Every image under <prefix>-main: a one-config, no-layer manifest per repository."""
    client = RegistryClient(host)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {}}).encode()

    def put(index: int) -> None:
        path = f"hub/{name_of(index)}"
        digest = client.upload_blob(path, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
            "layers": []}).encode()
        client.put_manifest(path, f"{PREFIX}-main", manifest, MANIFEST_TYPE)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(images)))


def plan(stack: Stack, registry: str, *args: str) -> tuple[float, int]:
    """Seconds one `stack-builder plan` took, and how many images it planned."""
    env = {**os.environ, "STACK_REGISTRY_USER": "", "STACK_REGISTRY_PASSWORD": ""}
    env.pop("GITHUB_ACTIONS", None)
    started = time.perf_counter()
    result = subprocess.run([str(STACK_BUILDER), "-d", str(stack.root), "plan", "--registry", registry, *args],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"plan {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, len(json.loads((stack.root / "artifacts" / "plan.json").read_text())["images"])


def median(runs: int, stack: Stack, registry: str, *args: str) -> tuple[float, int]:
    timed = [plan(stack, registry, *args) for _ in range(runs)]
    return statistics.median(t for t, _ in timed), timed[-1][1]


def measure(folder: Path, size: int, runs: int, registry_binary: str | None) -> dict[str, tuple[float, int]]:
    """{case: (median seconds, images planned)} for one generated stack of ``size`` images."""
    stack = generate(folder / f"stack-{size}", size)
    found: dict[str, tuple[float, int]] = {}
    with ExitStack() as scope:
        if registry_binary is None:
            # Nothing listens on this port: `plan --all` asks nothing, so it does not matter.
            found["plan --all"] = median(runs, stack, "127.0.0.1:9", "--all")
            return found
        empty = scope.enter_context(running_registry(registry_binary, folder / f"empty-{size}"))
        full = scope.enter_context(running_registry(registry_binary, folder / f"full-{size}"))
        populate(full, size)
        found["plan --all"] = median(runs, stack, empty, "--all")
        found["plan, empty registry"] = median(runs, stack, empty)
        found["plan, full registry"] = median(runs, stack, full)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-registry", action="store_true", help="only plan --all")
    parser.add_argument("--keep", type=Path, help="write the stacks here and keep them")
    options = parser.parse_args(argv)
    binary = None if options.no_registry else shutil.which("docker-registry") or shutil.which("registry")
    if binary is None and not options.no_registry:
        raise SystemExit("docker-registry is not installed (bash setup.sh env), or pass --no-registry")
    with ExitStack() as scope:
        if options.keep:
            folder: Path = options.keep
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="bench-plan-scale-")))
        results = {size: measure(folder, size, options.runs, binary) for size in options.sizes}
    print(f"`stack-builder plan` on generated stacks (random parents, seed {SEED}); median of {options.runs} runs")
    for size, cases in results.items():
        for case, (seconds, planned) in cases.items():
            print(f"  {size:6,} images, {case + ':':24s} {seconds:6.2f}s  ({planned:,} planned)")
    small, large = min(results), max(results)
    if small != large:
        goals = {"plan --all": 1.5, "plan, empty registry": 3.0, "plan, full registry": 3.0}
        print(f"growth {small:,} -> {large:,} images ({large / small:.0f}x the images; linear or better: "
              f"time ratio <= {large / small:.0f})")
        for case, (seconds, _) in results[large].items():
            ratio = seconds / results[small][case][0]
            print(f"  {case + ':':30s} ratio {ratio:5.2f}; {seconds:.2f}s at {large:,} (goal <= {goals[case]} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
