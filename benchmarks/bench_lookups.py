"""Registry lookups at scale: `plan` on a generated 300-image stack, against a registry behind a loopback
proxy that adds 50 ms to every request (GHCR-like latency), measured side by side in one run.

- baseline: `plan --all`, which asks the registry nothing but its API root (every image is built, so
  neither missing images nor parents are looked up);
- empty registry: `plan`, which asks which of the 300 images the registry lacks (all of them);
- full registry: `plan` when the registry holds all 300 under <prefix>-main (nothing to build);
- one changed leaf's parent chain: `plan` after a change to one image folder, on the full registry.

Goal: each lookup plan takes at most 3 s more than the baseline.

Usage: python benchmarks/bench_lookups.py   (starts its own registries and proxies; no engine needed)
"""
from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent.parent)]
from faultproxy import fault_proxy  # noqa: E402
from stacks import Stack, running_registry  # noqa: E402

from stack_builder.registry.client import RegistryClient  # noqa: E402

IMAGES = 300
FANOUT = 4  # image i's parent is image (i - 1) // FANOUT: a tree five levels deep
LATENCY_S = 0.05
RUNS = 3
PREFIX = "2024.1"


def generate(root: Path) -> Stack:
    stack = Stack(root, None)
    lines = ["images:"]
    for i in range(IMAGES):
        lines += [f"  img{i:03d}:", f"    image_name: ghcr.io/bench/img{i:03d}"]
        if i:
            lines.append(f"    depend_on: img{(i - 1) // FANOUT:03d}")
        dockerfile = "FROM busybox\n" if i == 0 else "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        stack.write(f"images/img{i:03d}/Dockerfile", dockerfile + f"RUN echo {i} > /id\n")
    lines += ["tag:", f'  prefix: "{PREFIX}"']
    stack.write("spec.yml", "\n".join(lines) + "\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.commit("generated")
    return stack


def populate(host: str) -> None:
    """Every image under <prefix>-main: a one-config, no-layer manifest per repository."""
    client = RegistryClient(host)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {}}).encode()
    for i in range(IMAGES):
        path = f"bench/img{i:03d}"
        digest = client.upload_blob(path, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": digest, "size": len(config)}, "layers": []}).encode()
        client.put_manifest(path, f"{PREFIX}-main", manifest, "application/vnd.oci.image.manifest.v1+json")


def plan(stack: Stack, registry: str, *args: str) -> tuple[float, int]:
    started = time.perf_counter()
    result = stack.doit("plan", "--registry", registry, *args, env={"STACK_REGISTRY_USER": "",
                                                                   "STACK_REGISTRY_PASSWORD": ""})
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"plan {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, len(json.loads((stack.root / "artifacts" / "plan.json").read_text())["images"])


def median(stack: Stack, registry: str, *args: str) -> tuple[float, int]:
    runs = [plan(stack, registry, *args) for _ in range(RUNS)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main() -> int:
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed: bash setup.sh env")
    slow = lambda method, path: "stall"  # noqa: E731 - every request waits LATENCY_S, then is forwarded
    with tempfile.TemporaryDirectory(prefix="bench-lookups-") as tmp:
        stack = generate(Path(tmp) / "stack")
        with running_registry(binary, Path(tmp) / "empty") as empty, \
                running_registry(binary, Path(tmp) / "full") as full:
            populate(full)
            with fault_proxy(empty, slow, stall_s=LATENCY_S) as (slow_empty, empty_counts), \
                    fault_proxy(full, slow, stall_s=LATENCY_S) as (slow_full, full_counts):
                baseline, n_all = median(stack, slow_empty, "--all")
                before = empty_counts["forwarded"]
                lacking, n_lacking = median(stack, slow_empty)
                empty_requests = (empty_counts["forwarded"] - before) // RUNS
                before = full_counts["forwarded"]
                present, n_present = median(stack, slow_full)
                full_requests = (full_counts["forwarded"] - before) // RUNS
                stack.write("images/img299/notes.txt", "changed\n")  # img299's chain: 299 <- 74 <- 18 <- 4 <- 0
                changed, n_changed = median(stack, slow_full)
    print(f"`plan` on a generated {IMAGES}-image stack, registry behind a proxy adding {LATENCY_S * 1000:.0f} ms "
          f"per request; median of {RUNS} runs")
    print(f"  baseline, no lookups (plan --all):       {baseline:5.2f}s  ({n_all} images planned)")
    for label, elapsed, planned, extra in (
            ("empty registry (all missing)", lacking, n_lacking, f", {empty_requests} requests"),
            ("full registry (nothing to build)", present, n_present, f", {full_requests} requests"),
            ("full registry, one leaf changed", changed, n_changed, "")):
        print(f"  {label + ':':40s} {elapsed:5.2f}s  ({planned} images planned{extra}); "
              f"+{elapsed - baseline:.2f}s over baseline (goal <= 3 s), ratio {elapsed / baseline:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
