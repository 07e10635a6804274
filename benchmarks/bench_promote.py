"""Promotion of the bundled stack: registry-side retag, against `skopeo copy` and against docker pull/tag/push.

Builds the bundled stack into a registry of its own (layer cache makes this quick after the
first time), then promotes `<q>-main` to `<q>-stable` three ways:

1. registry-side, as `stack-builder tag` does (GET manifest, PUT the same bytes; no layer moves), timed
   in-process (plan with gates, then move);
2. the whole `stack-builder tag` command (start-up, spec, gates, moves, promotion history, wiki) side by
   side with a shell loop of `skopeo copy` of the same 4 tags (each registry-side too: skopeo finds every
   layer already there). Rounds alternate which goes first; each round promotes to a quarter of its own,
   so that every tag really moves. Goal: the command takes at most 2x the loop (ratio of medians);
3. the predecessor's way: with the images gone from the engine (as on a fresh CI runner),
   `docker pull`, `docker tag`, `docker push` of every image.

The GPU gate is skipped (--skip-gpu-test: no GPU here); the model gate is read as usual. Bytecode is
cached as in a user's checkout (a PYTHONDONTWRITEBYTECODE here is dropped for the commands).
Usage: python benchmarks/bench_promote.py [rounds]   (needs the engine, docker-registry and skopeo)
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

import docker

from _stack import bundled_with_registry
from stacks import STACK_BUILDER, Stack

from stack_builder.registry.client import RegistryClient
from stack_builder.release import promote
from stack_builder.spec.stack_spec import load_spec

TAG_GOAL = 2.0  # whole `stack-builder tag` / `skopeo copy` loop
SKOPEO = ("skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--insecure-policy",
          "--src-tls-verify=false", "--dest-tls-verify=false")


def command_env(stack: Stack) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONDONTWRITEBYTECODE", "GITHUB_ACTIONS")}
    env["STACK_REGISTRY"] = str(stack.registry)
    return env


def tag_command(stack: Stack, tag: str) -> float:
    """Seconds of one whole `stack-builder tag --tag TAG` in the stack's folder."""
    started = time.perf_counter()
    result = subprocess.run([str(STACK_BUILDER), "tag", "--tag", tag, "--skip-gpu-test"], cwd=stack.root,
                            env=command_env(stack), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return elapsed


def skopeo_loop(host: str, repositories: list[str], source: str, target: str) -> float:
    """Seconds of one `skopeo copy` per repository, source tag to target tag in the same registry."""
    started = time.perf_counter()
    for repository in repositories:
        subprocess.run([*SKOPEO, f"docker://{host}/{repository}:{source}", f"docker://{host}/{repository}:{target}"],
                       check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo is not installed: apt-get install -y skopeo")
    client = docker.from_env(timeout=1200)
    with bundled_with_registry("bench-promote-") as (_, stack):
        registry = str(stack.registry)
        print("building the bundled stack into the benchmark registry ...", flush=True)
        built = stack.doit("build", "--all", "--workers", "2", timeout=3600)
        if built.returncode != 0:
            raise SystemExit(built.stdout + built.stderr)
        spec = load_spec(stack.root)
        prefix = spec.tag_prefix
        images = stack.report()["images"]
        size = sum(client.images.get(r["ref"]).attrs["Size"] for r in images.values())

        # 1. registry-side, in-process
        registry_client = RegistryClient(registry)
        started = time.perf_counter()
        moves = promote.plan(spec, registry_client, registry, f"{prefix}-main", global_stable=False,
                             skip_gpu_test=True)
        promote.execute(moves, registry_client)
        in_process = time.perf_counter() - started
        requests_made = registry_client.stats["requests"]
        repositories = [move.repository for move in moves]

        # 2. the whole command against a skopeo copy loop, side by side; a quarter of its own per round
        tag_times: list[float] = []
        skopeo_times: list[float] = []
        for number in range(rounds + 1):  # round 0 warms the bytecode and the registry, uncounted
            quarter = f"{2100 + number}.1"
            for move in moves:  # the build under a branch tag of that quarter, for the command to promote
                registry_client.put_manifest(move.repository, f"{quarter}-bench", move.body, str(move.media_type))
            if number % 2:
                whole = tag_command(stack, f"{quarter}-bench")
                loop = skopeo_loop(registry, repositories, f"{prefix}-main", f"{quarter}-skopeo")
            else:
                loop = skopeo_loop(registry, repositories, f"{prefix}-main", f"{quarter}-skopeo")
                whole = tag_command(stack, f"{quarter}-bench")
            if number:
                tag_times.append(whole)
                skopeo_times.append(loop)

        # 3. pull/tag/push, from an engine that does not hold the images
        for result in reversed(list(images.values())):  # children first: parents have dependents
            client.images.remove(result["image_id"], force=True)
        started = time.perf_counter()
        for result in images.values():
            repo = result["ref"].rsplit(":", 1)[0]
            client.api.pull(repo, tag=f"{prefix}-main")
            client.api.tag(f"{repo}:{prefix}-main", repo, f"{prefix}-stable-docker")
            for chunk in client.api.push(repo, tag=f"{prefix}-stable-docker", stream=True, decode=True):
                if "error" in chunk:
                    raise SystemExit(chunk["error"])
        docker_way = time.perf_counter() - started

    whole, loop = statistics.median(tag_times), statistics.median(skopeo_times)
    print(f"bundled stack: {len(images)} images, {size / 1e9:.2f} GB in the engine")
    print(f"registry-side retag, in-process:   {in_process * 1000:8.1f} ms ({requests_made} HTTP requests)")
    print(f"whole `stack-builder tag`:          {whole * 1000:8.1f} ms (median of {rounds})")
    print(f"`skopeo copy` loop of the 4 tags:   {loop * 1000:8.1f} ms (median of {rounds}, same rounds)")
    print(f"docker pull/tag/push:               {docker_way * 1000:8.1f} ms")
    print(f"ratio pull/tag/push / registry-side in-process: {docker_way / in_process:8.1f}x (goal >= 50x)")
    print(f"ratio whole stack-builder tag / skopeo copy loop: {whole / loop:6.2f}x (goal <= {TAG_GOAL}x)")
    return 0 if whole / loop <= TAG_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
