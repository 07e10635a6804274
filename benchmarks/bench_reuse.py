"""CI re-running a commit that was already built, against building it: the bundled stack, side by side in one run.

1. build: `stack-builder build --all` on an engine with no build cache and a registry with none of the
   stack's images (a fresh CI runner's first build of the commit): every image is built, tested, pushed.
2. re-run: the same command again on the same commit: every image's input key is already published, so
   each is retagged registry-side (`reused`) and nothing is built or tested.
3. for scale, `--no-reuse` on the warm engine: a rebuild from BuildKit's cache, tests and push included.

Goal: the re-run costs at most 5% of the build.

Usage: python benchmarks/bench_reuse.py   (needs a running engine and the seeded debian base; ~5 min)
"""
from __future__ import annotations

import subprocess
import time

from _stack import bundled_with_registry
from stacks import Stack


def timed(stack: Stack, *args: str) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    result = stack.doit("build", "--all", "--workers", "2", *args, timeout=3600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, {name: r["status"] for name, r in stack.report()["images"].items()}


def main() -> int:
    subprocess.run(["docker", "builder", "prune", "-af"], check=False, capture_output=True)
    # fresh: the keys (and digests) are new, whatever this engine built before.
    with bundled_with_registry("bench-reuse-", fresh=True) as (_, stack):
        build, built = timed(stack)
        rerun, reused = timed(stack)
        warm, rebuilt = timed(stack, "--no-reuse")
    print("bundled stack (4 images), `stack-builder build --all --workers 2`, same commit, seconds")
    print(f"  build (cold engine, empty registry):   {build:6.1f}s  {sorted(set(built.values()))}")
    print(f"  re-run (every image reused):           {rerun:6.1f}s  {sorted(set(reused.values()))}")
    print(f"  --no-reuse rebuild (warm BuildKit cache): {warm:6.1f}s  {sorted(set(rebuilt.values()))}")
    print(f"  re-run / build: {rerun / build:.3f} (goal <= 0.05)   re-run / warm rebuild: {rerun / warm:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
