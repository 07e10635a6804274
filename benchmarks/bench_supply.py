"""What SBOMs and signatures add to a build: the bundled stack's warm rebuild, with and without signing, side by side.

1. `build --all --no-reuse` on a warm engine, no signing: build (from BuildKit's cache), tests, push, one SBOM
   per image (always made), manifest records.
2. the same with `STACK_SIGNING_KEY` (a generated cosign key pair): every pushed digest is also signed.
Each is run twice, alternating, and the medians are compared.

Usage: python benchmarks/bench_supply.py   (needs a running engine, the seeded debian base and cosign; ~6 min)
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _stack import bundled_with_registry, registry_binary
from stacks import Stack


def timed(stack: Stack, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = stack.doit("build", "--all", "--no-reuse", "--workers", "2", env=env, timeout=3600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> int:
    registry_binary()
    cosign = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    if not Path(cosign).is_file():
        raise SystemExit("cosign is not installed: bash setup.sh env")
    with bundled_with_registry("bench-supply-", fresh=True) as (tmp, stack):
        keys = tmp / "keys"
        keys.mkdir()
        subprocess.run([cosign, "generate-key-pair"], cwd=keys, env={**os.environ, "COSIGN_PASSWORD": "bench"},
                       check=True, capture_output=True)
        timed(stack, {})  # warm BuildKit's cache and the registry
        plain: list[float] = []
        signed: list[float] = []
        signing = {"STACK_SIGNING_KEY": str(keys / "cosign.key"), "COSIGN_PASSWORD": "bench"}
        for _ in range(2):
            plain.append(timed(stack, {}))
            signed.append(timed(stack, signing))
        digests = sum(len(r.get("signed") or []) for r in stack.report()["images"].values())
    p, s = statistics.median(plain), statistics.median(signed)
    print("bundled stack (4 images), `build --all --no-reuse --workers 2` on a warm engine, seconds (median of 2)")
    print(f"  without signing (SBOMs only):  {p:6.1f}s  {[round(x, 1) for x in plain]}")
    print(f"  with cosign signing:           {s:6.1f}s  {[round(x, 1) for x in signed]}  ({digests} digests signed)")
    print(f"  signed / unsigned: {s / p:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
