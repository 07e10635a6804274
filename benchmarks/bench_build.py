"""Benchmarks for `doit build`, measured side by side in one run on the real engine and registry.

1. No-change latency: `doit build` when nothing changed, against its 3 s goal (and, for scale,
   against `doit list`, which only starts doit).
2. Parallel scheduling: a stack dominated by `RUN sleep`, with two independent branches, built
   with --workers 2. The critical path is the longest parent->child chain of the per-image times
   the build itself reports (build + test + push); the goal is wall <= 1.15 x critical path.

3. Cold runners and the registry cache: on an engine with none of the stack's images and no build
   cache, a build after a change to the last instruction, against a cold full build of the same
   image; goal <= 0.3. Measured on a sleep-dominated image, and with --bundled also on the bundled
   datascience-notebook (its parent base-notebook comes from the registry, as on a CI runner).

Usage: python benchmarks/bench_build.py [--bundled]   (needs a running engine; starts its own registry)
"""
from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

import docker

from _stack import bundled_stack, workspace
from stacks import Stack, ensure_test_base, small_stack

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
    durations = {name: float(images[name]["duration_s"]) for name in SLEEP_STACK}

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


def cold_engine(engine: docker.DockerClient, registry: str) -> None:
    """What a fresh CI runner has: none of the stack's images and no build cache."""
    for image in engine.images.list():
        if any(tag.startswith(f"{registry}/") for tag in image.tags) or any(
                d.startswith(f"{registry}/") for d in image.attrs.get("RepoDigests") or []):
            engine.images.remove(image.id, force=True)
    engine.api.prune_builds(all=True)


def cold_rebuild(stack: Stack, engine: docker.DockerClient, registry: str, image: str, dockerfile: Path) -> None:
    """Cold full build, then (cold again) a build after a last-line change; print their ratio."""
    cold_engine(engine, registry)
    full = timed(stack, "build", "--image", image)
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {uuid.uuid4().hex} > /tmp/last-change.txt\n")
    stack.commit("change the last instruction")
    cold_engine(engine, registry)
    rebuilt = timed(stack, "build", "--image", image)
    print(f"cold runner, registry cache: {image}")
    print(f"  cold full build {full:.1f}s, cold rebuild after a last-line change {rebuilt:.1f}s")
    print(f"  ratio {rebuilt / full:.2f} (goal <= 0.3)")


def cold_cache(root: Path, registry: str, base: str, engine: docker.DockerClient) -> None:
    stack = Stack(root / "cold", registry)
    stack.write("spec.yml", f"images:\n  slow:\n    image_name: bench/slow\n    build_args: {{NONCE: '{uuid.uuid4().hex}'}}\n"
                            "tag:\n  prefix: '2024.1'\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    dockerfile = stack.write("images/slow/Dockerfile", f"FROM {base}\nARG NONCE\nRUN echo $NONCE && sleep 12\n"
                                                       "RUN echo last > /last.txt\n")
    stack.commit("slow image")
    cold_rebuild(stack, engine, registry, "slow", dockerfile)


def build_step(engine: docker.DockerClient, context: Path, build_args: dict[str, str], cache_from: tuple[str, ...],
               log: Path) -> float:
    """The build step alone, as the builder runs it (BuildKit through the docker CLI), timed."""
    from stack_builder.engine.build import BuildRequest, build_image

    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        build_image(engine, BuildRequest(context=context, dockerfile=context / "Dockerfile", build_args=build_args,
                                         labels={}, cache_from=cache_from), out)
    return time.perf_counter() - started


def cold_build_step_bundled(stack: Stack, engine: docker.DockerClient, registry: str) -> None:
    """datascience-notebook's build step alone: cold in full, then cold with the registry cache after a
    last-line change (no tests, no push), its parent by digest from the registry in both."""
    last = stack.report()["images"]["datascience-notebook"]
    parent, previous = str(last["parent"]), str(last["ref"])  # the parent by digest; the image with its cache
    context = stack.root / "images" / "datascience-notebook"
    cold_engine(engine, registry)
    full = build_step(engine, context, {"BASE_IMAGE": parent}, (), stack.root / "full.log")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {uuid.uuid4().hex} > /tmp/step-change.txt\n")
    cold_engine(engine, registry)
    rebuilt = build_step(engine, context, {"BASE_IMAGE": parent}, (previous,), stack.root / "rebuilt.log")
    print("cold runner, registry cache: datascience-notebook, the build step alone")
    print(f"  cold full build {full:.1f}s, cold rebuild after a last-line change {rebuilt:.1f}s")
    print(f"  ratio {rebuilt / full:.2f} (goal <= 0.3)")


def cold_cache_bundled(root: Path, registry: str, engine: docker.DockerClient) -> None:
    folder = root / "bundled"
    stack = bundled_stack(folder, registry)
    assert stack.doit("build", "--image", "base-notebook").returncode == 0
    cold_rebuild(stack, engine, registry, "datascience-notebook", folder / "images" / "datascience-notebook" /
                 "Dockerfile")
    cold_build_step_bundled(stack, engine, registry)


def main() -> int:
    base = ensure_test_base(docker.from_env())
    with workspace("bench-") as (tmp, registry):
        no_change(tmp, registry, base)
        sleep_stack(tmp, registry, base)
        cold_cache(tmp, registry, base, docker.from_env())
        if "--bundled" in sys.argv:
            cold_cache_bundled(tmp, registry, docker.from_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
