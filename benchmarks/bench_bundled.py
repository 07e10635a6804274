"""The bundled stack's full build with BuildKit cache mounts against its Dockerfiles before them (the
commit BEFORE below), measured side by side in one run on the real engine (`--all --no-push`).

Each variant is built twice: a first build, then a repeated one after a change above every image's
package step (as when a maintainer edits a Dockerfile), which invalidates those layers. With cache
mounts, apt and pip reuse what the first build downloaded; without them they download it all again.

Usage: python benchmarks/bench_bundled.py   (needs a running engine and the seeded debian base; ~15 min)
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests")]
from stacks import REPO, Stack  # noqa: E402

BEFORE = "2b055d6"  # the last commit whose bundled Dockerfiles have no cache mounts


def dockerfile_before(name: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:images/{name}/Dockerfile"],
                          capture_output=True, text=True, check=True).stdout


def variant(root: Path, name: str, *, mounts: bool) -> Stack:
    folder = root / name
    shutil.copytree(REPO, folder, ignore=shutil.ignore_patterns(".git", ".venv", ".stack-run", "artifacts", "wiki",
                                                                ".doit.json*", "__pycache__", "tests", "benchmarks"))
    for dockerfile in (folder / "images").glob("*/Dockerfile"):
        text = dockerfile.read_text()
        # The variants must not share layers: a label of their own comes first in every image.
        text = re.sub(r"^(FROM .*)$", rf"\1\nLABEL bench.variant={name}", text, count=1, flags=re.M)
        if not mounts:
            text = re.sub(r"^(FROM .*)$", rf"\1\nLABEL bench.variant={name}", dockerfile_before(dockerfile.parent.name),
                          count=1, flags=re.M)
        dockerfile.write_text(text)
    stack = Stack(folder, None)
    stack.commit(name)
    return stack


def invalidate(stack: Stack) -> None:
    """An edit above every image's package step: a new ENV line right after the first FROM."""
    nonce = uuid.uuid4().hex[:12]
    for dockerfile in (stack.root / "images").glob("*/Dockerfile"):
        text = dockerfile.read_text()
        dockerfile.write_text(re.sub(r"^(FROM .*)$", rf"\1\nENV BENCH_EDIT={nonce}", text, count=1, flags=re.M))
    stack.commit("edit")


def build(stack: Stack) -> float:
    started = time.perf_counter()
    result = stack.doit("build", "--all", "--no-push", "--workers", "2", timeout=3600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> int:
    subprocess.run(["docker", "builder", "prune", "-af"], check=False, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-bundled-") as tmp:
        plain = variant(Path(tmp), "plain", mounts=False)
        cached = variant(Path(tmp), "mounts", mounts=True)
        times = {}
        for name, stack in (("plain", plain), ("mounts", cached)):
            times[(name, "first")] = build(stack)
        for name, stack in (("plain", plain), ("mounts", cached)):
            invalidate(stack)
            times[(name, "repeated")] = build(stack)
    print("bundled stack, full build (--all --no-push), BuildKit, seconds")
    for run in ("first", "repeated"):
        plain_s, mounts_s = times[("plain", run)], times[("mounts", run)]
        print(f"  {run:<9} without cache mounts {plain_s:6.1f}   with cache mounts {mounts_s:6.1f}   "
              f"ratio {mounts_s / plain_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
