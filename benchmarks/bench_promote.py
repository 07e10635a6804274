"""Promotion of the bundled stack: registry-side retag vs docker pull/tag/push, side by side.

Builds the bundled stack into a registry of its own (layer cache makes this quick after the
first time), then promotes `<q>-main` to `<q>-stable` two ways:

1. registry-side, as `doit tag` does (GET manifest, PUT the same bytes; no layer moves), timed
   both in-process and as the whole `doit tag` command;
2. the predecessor's way: with the images gone from the engine (as on a fresh CI runner),
   `docker pull`, `docker tag`, `docker push` of every image.

The GPU gate is skipped (--skip-gpu-test: no GPU here); the model gate is read as usual.
Usage: python benchmarks/bench_promote.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent.parent)]
from stacks import REPO, Stack, running_registry  # noqa: E402

from stack_builder.release import promote# noqa: E402
from stack_builder.registry.client import RegistryClient  # noqa: E402
from stack_builder.spec.stack_spec import load_spec  # noqa: E402


def main() -> int:
    binary = shutil.which("docker-registry")
    if not binary:
        raise SystemExit("docker-registry is not installed: bash setup.sh env")
    client = docker.from_env(timeout=1200)
    with tempfile.TemporaryDirectory(prefix="bench-promote-") as tmp, \
            running_registry(binary, Path(tmp) / "registry") as registry:
        stack = Stack(Path(tmp) / "bundled", registry)
        shutil.copytree(REPO / "images", stack.root / "images")
        shutil.copy(REPO / "spec.yml", stack.root / "spec.yml")
        stack.write(".gitignore", "artifacts/\n.doit.json*\nwiki/\n")
        stack.commit("bundled stack")
        print("building the bundled stack into the benchmark registry ...", flush=True)
        built = stack.doit("build", "--all", "--workers", "2", timeout=3600)
        if built.returncode != 0:
            raise SystemExit(built.stdout + built.stderr)
        spec = load_spec(stack.root)
        prefix = spec.tag_prefix
        images = stack.report()["images"]
        size = sum(client.images.get(r["ref"]).attrs["Size"] for r in images.values())

        # 1a. registry-side, in-process
        registry_client = RegistryClient(registry)
        started = time.perf_counter()
        moves = promote.plan(spec, registry_client, registry, f"{prefix}-main", global_stable=False,
                             skip_gpu_test=True)
        promote.execute(moves, registry_client)
        in_process = time.perf_counter() - started
        requests_made = registry_client.stats["requests"]

        # 1b. registry-side, the whole command (to another target: a fresh quarter branch tag)
        for move in moves:  # make a source tag for the command run
            manifest = registry_client.get_manifest(move.repository, f"{prefix}-main")
            assert manifest is not None
            registry_client.put_manifest(move.repository, f"{prefix}-bench", manifest.body, manifest.media_type)
        started = time.perf_counter()
        command = stack.doit("tag", "--tag", f"{prefix}-bench", "--skip-gpu-test")
        whole_command = time.perf_counter() - started
        if command.returncode != 0:
            raise SystemExit(command.stdout + command.stderr)

        # 2. pull/tag/push, from an engine that does not hold the images
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

    print(f"bundled stack: {len(images)} images, {size / 1e9:.2f} GB in the engine")
    print(f"registry-side retag, in-process:   {in_process * 1000:8.1f} ms ({requests_made} HTTP requests)")
    print(f"registry-side, whole `doit tag`:    {whole_command * 1000:8.1f} ms")
    print(f"docker pull/tag/push:               {docker_way * 1000:8.1f} ms")
    print(f"ratio pull/tag/push / registry-side in-process: {docker_way / in_process:8.1f}x (goal >= 50x)")
    print(f"ratio pull/tag/push / whole doit tag command:   {docker_way / whole_command:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
