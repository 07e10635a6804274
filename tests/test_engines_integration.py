"""`build --engines FILE` on real engines: this machine's dockerd and a second one beside it (its own state,
bridge and socket, reached over TCP with TLS on loopback, with certificates the test makes)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest

from second_engine import SecondEngine, running_engine
from stack_builder.registry.client import RegistryClient
from stacks import DODO, MakeStack, Stack, publish_test_base_index, two_platform_stack

pytestmark = pytest.mark.integration

LOCAL = "unix:///var/run/docker.sock"


@pytest.fixture(scope="module")
def engine_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEngine]:
    with running_engine(tmp_path_factory.mktemp("engine-b"), name="fb") as engine:
        yield engine


@pytest.fixture(scope="module")
def arm64_base(engine: docker.DockerClient, registry: str, test_base: str) -> str:
    return publish_test_base_index(engine, registry)


def engines_file(stack: Stack, engines: list[dict[str, Any]]) -> Path:
    """The --engines file, outside the stack's repository (it names this machine's hosts and certificates)."""
    path = stack.root.parent / f"engines-{stack.root.name}.yml"
    path.write_text(json.dumps({"engines": engines}))  # JSON is YAML
    return path


def split_engines(b: SecondEngine, tls: Path | None = None) -> list[dict[str, Any]]:
    return [{"name": "a", "platforms": ["linux/amd64"], "endpoint": LOCAL},
            {"name": "b", "platforms": ["linux/arm64"], "endpoint": b.tcp_url, "tls": str(tls or b.tls.client)}]


def architectures(client: docker.DockerClient, repository: str) -> set[str]:
    """The architectures of the engine's images of ``repository``."""
    return {str(image.attrs["Architecture"]) for image in client.images.list(name=repository)}


def index_platforms(registry: str, repository: str, tag: str) -> set[str]:
    index = RegistryClient(registry).get_manifest(repository, tag)
    assert index is not None, f"no {repository}:{tag}"
    return {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in json.loads(index.body)["manifests"]}


def test_each_platform_on_its_engine_and_the_index_assembled(make_stack: MakeStack, registry: str,
                                                             engine: docker.DockerClient, engine_b: SecondEngine,
                                                             arm64_base: str) -> None:
    stack = make_stack("split", registry=registry)
    two_platform_stack(stack, arm64_base, "farm")
    result = stack.doit("build", "--all", "--engines", str(engines_file(stack, split_engines(engine_b))))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = stack.report()
    for name in ("root", "child"):
        image = report["images"][name]
        assert image["status"] == "built" and image["platforms_failed"] == {}, image
        assert image["engines"] == {"linux/amd64": "a", "linux/arm64": "b"}
        assert index_platforms(registry, f"farm/{name}", "2024.1-main") == {"linux/amd64", "linux/arm64"}
    # Each engine's image store holds only its own platform of the stack's images.
    for name in ("root", "child"):
        repository = f"{registry}/farm/{name}"
        assert architectures(engine, repository) == {"amd64"}
        assert architectures(engine_b.client(), repository) == {"arm64"}
    assert report["engines"]["b"] == {"endpoint": engine_b.tcp_url, "platforms": ["linux/arm64"],
                                      "native": "linux/amd64", "lost": None}
    assert "engines" in result.stdout and "linux/arm64 on b" in result.stdout
    # The manifest pages, made after the merge, say which engine built each platform.
    assert report["pages"] is True
    pages = [page.read_text() for page in (stack.root / "wiki").rglob("*.md")]
    row = re.compile(r"^\| Engines \| linux/amd64 on ` ?a ?`, linux/arm64 on ` ?b ?` \|$", re.M)
    assert sum(bool(row.search(page)) for page in pages) == 2, [p[:300] for p in pages]  # root's and child's
    tls_key = (engine_b.tls.client / "key.pem").read_text()
    assert tls_key.strip().splitlines()[1] not in (stack.root / "artifacts" / "build-report.json").read_text()


def test_a_wrong_tls_certificate_is_a_clear_error_and_nothing_is_built(make_stack: MakeStack, registry: str,
                                                                        engine_b: SecondEngine,
                                                                        arm64_base: str) -> None:
    stack = make_stack("wrong", registry=registry)
    two_platform_stack(stack, arm64_base, "farm-wrong")
    result = stack.doit("build", "--all", "--engines",
                        str(engines_file(stack, split_engines(engine_b, engine_b.tls.wrong))))
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"engine 'b' ({engine_b.tcp_url}) does not answer: its TLS handshake failed" in said, said[-2000:]
    assert "Nothing was built" in said and "Traceback" not in said
    assert RegistryClient(registry).get_manifest("farm-wrong/root", "2024.1-main") is None


@pytest.mark.parametrize("engines, said", [
    ({"engines": []}, "the file holds one key, `engines:`"),
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "http://x"}]},
     "engines[0].endpoint: http://x is not a unix://, tcp:// or ssh:// URL"),
    ({"engines": [{"name": "a", "platforms": ["amd64"], "endpoint": LOCAL}]}, "engines[0].platforms:"),
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "tcp://127.0.0.1:1", "tls": "nowhere"}]},
     "engines[0].tls:"),
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "no-such-context"}]},
     "there is no docker context 'no-such-context'"),
])
def test_a_bad_engines_file_is_a_clear_error(make_stack: MakeStack, registry: str, engines: dict[str, Any],
                                             said: str, arm64_base: str) -> None:
    stack = make_stack("bad", registry=registry)
    two_platform_stack(stack, arm64_base, "farm-bad")
    path = stack.root.parent / "engines.yml"
    path.write_text(json.dumps(engines))
    result = stack.doit("build", "--all", "--engines", str(path))
    assert result.returncode != 0 and said in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_an_engine_lost_mid_build_fails_only_its_platform(make_stack: MakeStack, registry: str,
                                                          engine: docker.DockerClient, arm64_base: str,
                                                          tmp_path: Path) -> None:
    stack = make_stack("lost", registry=registry)
    two_platform_stack(stack, arm64_base, "farm-lost", require_all=False,
                       extra="RUN sleep 20\n")  # the arm64 build is still running when its engine goes
    with running_engine(tmp_path / "engine-c", name="fc") as doomed:
        jobs = stack.root / "artifacts" / "engines" / "b"

        def stop_when_started() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not list(jobs.glob("root--linux-arm64/build.log")):
                time.sleep(0.2)
            time.sleep(4)  # into the build
            doomed.stop()

        stopper = threading.Thread(target=stop_when_started)
        stopper.start()
        result = stack.doit("build", "--all", "--engines", str(engines_file(stack, split_engines(doomed))))
        stopper.join()
    said = result.stdout + result.stderr
    assert result.returncode != 0
    report = stack.report()
    assert report["engines"]["b"]["lost"] and f"engine 'b' ({doomed.tcp_url}) does not answer" in \
        report["engines"]["b"]["lost"]
    assert "engine b was lost" in said
    root = report["images"]["root"]
    assert root["platforms_built"] == ["linux/amd64"] and root["engines"]["linux/amd64"] == "a"
    assert index_platforms(registry, "farm-lost/root", "2024.1-main") == {"linux/amd64"}
    assert "child linux/arm64" in report["jobs_failed"] and "root linux/arm64" in report["jobs_failed"]
    assert report["images"]["child"]["engines"] == {"linux/amd64": "a"}


def test_a_pool_of_two_engines_builds_two_independent_images_at_once(make_stack: MakeStack, registry: str,
                                                                     engine_b: SecondEngine,
                                                                     test_base: str) -> None:
    stack = make_stack("pool", registry=registry)
    base = publish_amd64_base(registry, test_base)
    images = "\n".join(f"""\
  {name}:
    image_name: ghcr.io/farm-pool/{name}
    build_args: {{BASE_IMAGE: "{base}"}}""" for name in ("left", "right"))
    stack.write("spec.yml", f"images:\n{images}\ntag:\n  prefix: \"2024.1\"\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    for name in ("left", "right"):
        stack.write(f"images/{name}/Dockerfile", f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN sleep 3 && echo {name}\n")
    stack.commit("two roots")
    pool = [{"name": "a", "platforms": ["linux/amd64"], "endpoint": LOCAL},
            {"name": "b", "platforms": ["linux/amd64"], "endpoint": engine_b.tcp_url,
             "tls": str(engine_b.tls.client)}]
    result = stack.doit("build", "--all", "--workers", "1", "--engines", str(engines_file(stack, pool)))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = stack.report()
    used = {report["images"][n]["engines"]["linux/amd64"] for n in ("left", "right")}
    assert used == {"a", "b"}  # one job at a time per engine (--workers 1): the second went to the other
    spans = [span for engine, name in (("a", "left"), ("b", "right"), ("a", "right"), ("b", "left"))
             if (span := job_span(stack, engine, name)) is not None]
    assert len(spans) == 2 and max(s[0] for s in spans) < min(s[1] for s in spans)  # they overlapped


def job_span(stack: Stack, engine: str, image: str) -> tuple[str, str] | None:
    path = stack.root / "artifacts" / "engines" / engine / f"{image}--linux-amd64" / "artifacts" / "build-report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return str(report["started"]), str(report["finished"])


def publish_amd64_base(registry: str, test_base: str) -> str:
    """The test base in the registry: the second engine holds no local images, it pulls."""
    client = docker.from_env()
    target = f"{registry}/stack-test/busybox-amd64"
    client.images.get(test_base).tag(target, "1")
    for chunk in client.api.push(target, tag="1", stream=True, decode=True):
        assert "error" not in chunk, chunk
    return f"{target}:1"


def test_a_signal_stops_every_engine_and_removes_the_runs_containers_there(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, engine_b: SecondEngine,
        arm64_base: str) -> None:
    stack = make_stack("signal", registry=registry)
    two_platform_stack(stack, arm64_base, "farm-signal")
    # The plan builds a platform after the native one (level 0: root amd64; level 1: root arm64 and child
    # amd64; ...): tests of level 1 that wait keep a container running on each engine at once.
    for image, platform in (("root", "linux/arm64"), ("child", "linux/amd64")):
        stack.write(f"images/{image}/test/test_slow.py", f"""\
            import os


            def test_slow(container):
                seconds = "300" if os.environ["STACK_PLATFORM"] == "{platform}" else "0"
                code, _ = container.run(["sleep", seconds], timeout=400)
                assert code == 0
            """)
    stack.commit("slow tests")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["STACK_REGISTRY"] = registry
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(stack.root), "build", "--all",
                             "--engines", str(engines_file(stack, split_engines(engine_b)))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    remote, ours = engine_b.client(), f"{registry}/farm-signal/"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not (run_containers(engine, ours) and run_containers(remote, ours)):
        time.sleep(0.5)
    if not (run_containers(engine, ours) and run_containers(remote, ours)):
        proc.send_signal(signal.SIGTERM)
        raise AssertionError("the tests never started on both engines:\n" + proc.communicate(timeout=180)[0][-3000:])
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 143 and "Traceback" not in output, output[-3000:]
    assert run_containers(engine, ours) == [] and run_containers(remote, ours) == []  # removed on both engines
    report = stack.report()
    assert report["interrupted"] == "SIGTERM"
    # The jobs' records are the run's report: level 1's (root arm64 on b, child amd64 on a) were stopped in
    # their tests.
    root, child = report["images"]["root"], report["images"]["child"]
    assert root["status"] == "interrupted" and child["status"] == "interrupted", report["images"]
    assert root["engines"]["linux/amd64"] == "a" and root["platforms_built"] == ["linux/amd64"]
    assert RegistryClient(registry).get_manifest("farm-signal/root", "2024.1-main") is None


def run_containers(client: docker.DockerClient, namespace: str) -> list[str]:
    """The containers of stack-builder runs on the engine (the runs' label) of images of ``namespace``
    (registry/path: this test's only)."""
    ids = {image.id for image in client.images.list() if any(namespace in tag for tag in image.tags)}
    return [c.name for c in client.containers.list(all=True, filters={"label": "io.stack-builder.run"})
            if namespace in str(c.attrs["Config"]["Image"]) or c.attrs["Image"] in ids]
