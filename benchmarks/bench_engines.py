"""Engines measured side by side in one run (issue 29): what native engines save, and what a remote one costs.

1. Emulation. The bundled stack's `pip install` step (base-notebook's: a venv, then JupyterLab) built for
   linux/arm64 under QEMU against linux/amd64 natively, on this engine, FROM the same Debian with Python for
   each platform (seeded with mmdebstrap, pushed as one index to a registry of the run's own). No cache: each
   build runs the step. The ratio arm64 / amd64 is what an arm64 engine of its own removes.
2. A remote engine. The same small build (a 20 MB context sent, a RUN step) on a second dockerd started here,
   through its unix socket and through TCP with TLS verified both ways, rounds alternating, no cache. The
   ratio of medians TCP+TLS / unix socket is the overhead of reaching an engine over the network stack;
   goal <= 1.10.

Usage: python benchmarks/bench_engines.py [rounds]   (root; dockerd, docker-registry, mmdebstrap, arch-test, QEMU binfmt;
about 10 minutes, most of it the emulated pip install)
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from _stack import workspace
from second_engine import running_engine

from stack_builder.engine import baseimages, package_sources
from stack_builder.engine.build import find_cli
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient

OVERHEAD_GOAL = 1.10
PLATFORMS = ("linux/amd64", "linux/arm64")
PIP_STEP = """\
FROM {base}
ARG JUPYTERLAB_VERSION=4.2.5
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir "jupyterlab==${{JUPYTERLAB_VERSION}}"
"""
SMALL_BUILD = """\
FROM {base}
COPY payload /payload
RUN sha256sum /payload && for i in $(seq 1 200000); do :; done
"""


def buildkit(platform: str, *args: str) -> list[str]:
    """A BuildKit build's command line, with the client the builder itself uses (buildx, or 20.10's own)."""
    return [*find_cli().argv, "--platform", platform, *args]


def buildkit_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **find_cli().env}


def seed_python_base(arch: str, name: str) -> None:
    """Debian bookworm with python3-venv for ``arch``, imported as ``name`` for ``linux/<arch>``."""
    mirror = package_sources.apt_mirror()
    if mirror is None:
        raise SystemExit("no Debian archive in apt's sources")
    hooks = []
    if baseimages.HOST_BUNDLE.is_file():  # the network may intercept TLS: pip trusts this machine's CAs
        hooks = [f'--customize-hook=cp {baseimages.HOST_BUNDLE} "$1/usr/local/share/ca-certificates/host-ca.crt"',
                 '--customize-hook=chroot "$1" update-ca-certificates']
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--architectures={arch}",
                        "--include=ca-certificates,python3,python3-venv", *hooks, "bookworm", str(tarball), mirror],
                       check=True, stdin=subprocess.DEVNULL)
        # Imported by a build FROM scratch, so that the image says its architecture (an import says the engine's).
        (Path(tmp) / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n"
                                              "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n")
        subprocess.run(buildkit(f"linux/{arch}", "-t", name, tmp), check=True, stdout=subprocess.DEVNULL,
                       env=buildkit_env(dict(os.environ)))


def python_base_index(client: docker.DockerClient, registry: str) -> str:
    """The Python base for both platforms as one index in ``registry`` (seeded once, kept in the engine)."""
    repository = f"{registry}/bench/python-base"
    entries = []
    for platform in PLATFORMS:
        arch = platform.split("/")[1]
        local = f"localhost/bench/python-base:bookworm-{arch}"
        try:
            client.images.get(local)
        except docker.errors.ImageNotFound:
            print(f"seeding {local} with mmdebstrap ...", flush=True)
            seed_python_base(arch, local)
        tag = multiarch.platform_tag("1", platform)
        client.images.get(local).tag(repository, tag)
        digest = None
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise SystemExit(chunk["error"])
            digest = (chunk.get("aux") or {}).get("Digest") or digest
        entries.append(multiarch.Entry(platform, str(digest), "", 0))
    multiarch.publish_index(RegistryClient(registry), "bench/python-base", ["1"], entries)
    return f"{repository}:1"


def timed_build(folder: Path, platform: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(buildkit(platform, "--no-cache", "--progress", "plain", "-t", "bench/engines:scratch",
                                   str(folder)), env=buildkit_env(env), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the build for {platform} failed:\n{done.stderr[-3000:]}")
    return elapsed


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    client = docker.from_env(timeout=1200)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    with workspace("bench-engines-") as (tmp, registry):
        base = python_base_index(client, registry)
        pip = tmp / "pip"
        pip.mkdir()
        (pip / "Dockerfile").write_text(PIP_STEP.format(base=base))
        print("the pip install step, amd64 natively then arm64 under QEMU ...", flush=True)
        native = timed_build(pip, "linux/amd64", base_env)
        emulated = timed_build(pip, "linux/arm64", base_env)

        small = tmp / "small"
        small.mkdir()
        (small / "payload").write_bytes(os.urandom(20 * 1024 * 1024))
        (small / "Dockerfile").write_text(SMALL_BUILD.format(base=base))
        with running_engine(tmp / "engine", name="bench") as remote:
            unix_env = {**base_env, "DOCKER_HOST": remote.unix_url}
            tls_env = {**base_env, **remote.env()}
            timed_build(small, "linux/amd64", unix_env)  # the base pulled once, uncounted
            unix_times: list[float] = []
            tls_times: list[float] = []
            for number in range(rounds):
                order = [(unix_times, unix_env), (tls_times, tls_env)]
                for times, env in (order if number % 2 == 0 else reversed(order)):
                    times.append(timed_build(small, "linux/amd64", env))
    print(f"pip install step, linux/amd64 natively:      {native:8.1f} s")
    print(f"pip install step, linux/arm64 under QEMU:    {emulated:8.1f} s")
    print(f"emulation cost (arm64 under QEMU / amd64):   {emulated / native:8.1f}x")
    unix, tls = statistics.median(unix_times), statistics.median(tls_times)
    print(f"small build on a second engine, unix socket: {unix:8.2f} s (median of {rounds})")
    print(f"the same over TCP with TLS:                  {tls:8.2f} s (median of {rounds})")
    print(f"remote overhead (TCP+TLS / unix socket):     {tls / unix:8.2f}x (goal <= {OVERHEAD_GOAL})")
    return 0 if tls / unix <= OVERHEAD_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
