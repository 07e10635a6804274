"""gc's figures, measured side by side in one run, each registry of its own (tests/synthetic_builds.py writes the
builds straight into the registry, as the builder would: per-commit and branch tags, two platforms, an SBOM per
platform, a signature per build, promotions with their history).

1. A year of weekly builds: 52 builds of main (a shared 2 MB base layer, a unique 256 kB layer per platform),
   promoted every 13 weeks, into two registries: one never pruned, one with `gc` (builds 4, days 30) after each
   build. Both then run the registry's garbage collection; the figure is the storage of each, and their ratio.
2. `gc --dry-run` (the whole command) on a registry holding at least 1,000 tags, against the least any
   retention must do there: list the tags and resolve each one (HEAD), concurrently as gc does. Median of 3.

    python benchmarks/bench_gc.py
"""
from __future__ import annotations

import gzip
import os
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

from _stack import ROOT, workspace

from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stack_builder.release import gc
from stack_builder.release.gc_rules import KeepRules
from stack_builder.release.gc_storage import collect_garbage, storage_bytes
from synthetic_builds import NOW, Model, build, promote

STACK_BUILDER = Path(sys.executable).parent / "stack-builder"
WEEKS = 52


def a_year(with_gc: bool) -> int:
    """Storage (bytes) of a registry after a year of weekly builds, pruned weekly by gc or never."""
    with workspace("bench-gc-year-") as (tmp, host):
        client = RegistryClient(host)
        model = Model("year/notebook")
        shared = gzip.compress(os.urandom(2_000_000), mtime=0)
        start = NOW - timedelta(weeks=WEEKS)
        for week in range(WEEKS):
            now = start + timedelta(weeks=week)
            build(client, model, "main", 0, 2, layer_bytes=256_000, shared=shared, now=now)
            if week % 13 == 0:
                promote(client, model, back=False)
            if with_gc:
                plan = gc.make_plan(client, [model.repository], KeepRules(builds=4, days=30, now=now), now.isoformat())
                gc.apply(client, plan)
        config = tmp / "registry" / "config.yml"
        collect_garbage(config)
        checked = gc.verify(client, [model.repository])
        assert not checked.problems, checked.problems
        return storage_bytes(tmp / "registry" / "data")


def thousand_tags() -> tuple[float, float, int]:
    """(gc --dry-run seconds, list + resolve seconds, tags), medians of 3, on one registry of >= 1,000 tags."""
    with workspace("bench-gc-tags-") as (tmp, host):
        client = RegistryClient(host)
        model = Model("hub/model")
        week = 0
        while len(client.tags(model.repository)) < 1000:
            build(client, model, "main" if week % 3 else "feature", week % 90, 2)
            week += 1
        tags = len(client.tags(model.repository))
        stack = tmp / "stack"
        stack.mkdir()
        (stack / "spec.yml").write_text(textwrap.dedent("""\
            images:
              model:
                image_name: ghcr.io/hub/model
            tag:
              prefix: "2024.1"
            """))
        (stack / "images" / "model").mkdir(parents=True)
        (stack / "images" / "model" / "Dockerfile").write_text("FROM scratch\n")
        subprocess.run(["git", "init", "-q", str(stack)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
        gc_times, floor_times = [], []
        for _ in range(3):
            started = time.perf_counter()
            done = subprocess.run([str(STACK_BUILDER), "-d", str(stack), "gc", "--dry-run", "--registry", host],
                                  capture_output=True, text=True, env=env)
            gc_times.append(time.perf_counter() - started)
            assert done.returncode == 0, done.stderr[-2000:]
            started = time.perf_counter()
            lookups = Lookups(RegistryClient(host))
            listed = sorted(lookups.tags(model.repository))
            lookups.each(lambda tag: lookups.digest(model.repository, tag), listed)
            floor_times.append(time.perf_counter() - started)
        return statistics.median(gc_times), statistics.median(floor_times), tags


def main() -> None:
    never, pruned = a_year(False), a_year(True)
    print(f"a year of weekly builds ({WEEKS}, two platforms, promoted every 13 weeks):")
    print(f"  never pruned: {never / 1e6:.1f} MB; gc weekly (builds 4, days 30): {pruned / 1e6:.1f} MB; "
          f"ratio {pruned / never:.2f}")
    dry, floor, tags = thousand_tags()
    print(f"gc --dry-run, whole command, on {tags} tags: {dry:.2f} s (goal: under 10 s); listing and resolving "
          f"every tag alone: {floor:.2f} s; ratio {dry / floor:.1f}")
    print(f"(run from {ROOT})")


if __name__ == "__main__":
    main()
