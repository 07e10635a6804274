"""What signing and statements add, on the bundled stack, side by side in one run (medians, alternating):

1. `build --all --no-reuse` on a warm engine, without signing (build from BuildKit's cache, tests, push, one SBOM
   per image, manifest records) and with `STACK_SIGNING_KEY` (every digest built is also signed and gets its
   signed statement, cosign attest). Goal: at most +10%.
2. a re-run where every image is reused: without signing (the label is believed) and with it (each reused
   digest's statement is verified first). Goal: at most +2 s for the 4 images.
3. `tag` of the bundled stack (GPU gate skipped): without signing, and with the public key (every digest's
   signature, build statement and gate statements verified).

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


def timed_command(stack: Stack, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = stack.doit(*args, env=env, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
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
        reuse_plain: list[float] = []
        reuse_verified: list[float] = []
        tag_plain: list[float] = []
        tag_verified: list[float] = []
        verify = {"STACK_SIGNING_PUBKEY": str(keys / "cosign.pub")}
        tag = ["tag", "--tag", f"{stack.report()['tag']}", "--skip-gpu-test"]
        for round_ in range(3):
            pairs = [(reuse_plain, {}), (reuse_verified, signing)]
            for times, env in pairs if round_ % 2 == 0 else reversed(pairs):
                times.append(timed_command(stack, ["build", "--all", "--workers", "2"], env))
            tags = [(tag_plain, {}), (tag_verified, verify)]
            for times, env in tags if round_ % 2 == 0 else reversed(tags):
                times.append(timed_command(stack, tag, env))
        reused = sum(1 for r in stack.report()["images"].values() if r.get("status") == "reused")
    p, s = statistics.median(plain), statistics.median(signed)
    print("bundled stack (4 images), `build --all --no-reuse --workers 2` on a warm engine, seconds (median of 2)")
    print(f"  without signing (SBOMs only):  {p:6.1f}s  {[round(x, 1) for x in plain]}")
    print(f"  with signing and statements:   {s:6.1f}s  {[round(x, 1) for x in signed]}  ({digests} digests signed)")
    print(f"  signed / unsigned: {s / p:.3f} (goal <= 1.10)")
    rp, rv = statistics.median(reuse_plain), statistics.median(reuse_verified)
    print(f"re-run, every image reused ({reused} reused), `build --all`, median of 3")
    print(f"  label believed (no signing):   {rp:6.2f}s  {[round(x, 2) for x in reuse_plain]}")
    print(f"  statements verified:           {rv:6.2f}s  {[round(x, 2) for x in reuse_verified]}")
    print(f"  verifying adds {rv - rp:+.2f}s (goal <= +2 s)")
    tp, tv = statistics.median(tag_plain), statistics.median(tag_verified)
    print("`tag` of the bundled stack (--skip-gpu-test), median of 3")
    print(f"  no verification:               {tp:6.2f}s  {[round(x, 2) for x in tag_plain]}")
    print(f"  signatures and statements:     {tv:6.2f}s  {[round(x, 2) for x in tag_verified]}")
    print(f"  verifying adds {tv - tp:+.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
