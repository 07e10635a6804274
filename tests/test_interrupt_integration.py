"""Stopping when asked, and never hanging: signals and timeouts on the real engine and registry.

- SIGINT in the middle of a build: it stops promptly (exit 130), pushes nothing after the signal,
  reports every unfinished image `interrupted` with its step, leaves no container of the run, and a
  re-run completes the work. SIGTERM the same (143), also for a run that inherited SIGINT ignored.
- A second SIGINT exits at once.
- A test that hangs times out, fails its image and skips its descendants, while a sibling finishes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest

from stacks import DODO, MakeStack, Stack, registry_digest, small_stack

pytestmark = pytest.mark.integration

RUN_LABEL = "io.stack-builder.run"


def slow_marker(stack: Stack) -> Path:
    """While this file is there, the root's test sleeps (outside the stack: it is none of the stack's inputs)."""
    return stack.root.parent / f"{stack.root.name}.slow"


def slow_stack(stack: Stack, base: str, namespace: str, *, sleep_in: str) -> None:
    """root -> child; the root's build (``sleep_in="build"``) or its test (``"test"``, while the slow marker is
    there) sleeps 30 s."""
    stack.write("spec.yml", f"""\
        images:
          root:
            image_name: ghcr.io/{namespace}/root
          child:
            image_name: ghcr.io/{namespace}/child
            depend_on: root
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\nwiki/\n")
    build_sleep = "RUN sleep 30\n" if sleep_in == "build" else ""
    # A fresh ARG in scope changes the cache key of the RUN steps: BuildKit never skips the sleep from its cache.
    stack.write("images/root/Dockerfile", f"FROM {base}\nARG NONCE={uuid.uuid4().hex}\n{build_sleep}"
                                          "RUN echo root > /root.txt\n")
    stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo child > /child.txt\n")
    test_sleep = "30" if sleep_in == "test" else "0"
    slow_marker(stack).touch()
    stack.write("images/root/test/test_root.py", f"""\
        import os


        def test_root(container):
            seconds = "{test_sleep}" if os.path.exists({str(slow_marker(stack))!r}) else "0"
            code, output = container.run(["sh", "-c", f"sleep {{seconds}}; cat /root.txt"], timeout=120)
            assert code == 0 and output.strip() == "root"
        """)
    stack.commit("slow stack")


def start(stack: Stack, *args: str, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["STACK_REGISTRY"] = str(stack.registry)

    def ignore() -> None:  # as a background job of a non-interactive shell starts
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(stack.root), "build", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=ignore if ignore_sigint else None)


def wait_for(stack: Stack, text: str, log: str = "root.log", limit_s: float = 120) -> None:
    path = stack.root / "artifacts" / "logs" / log
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path}")


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    return [c.name for c in engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})]


@pytest.mark.parametrize("sig, code, step, ignore_sigint", [
    (signal.SIGINT, 130, "build", False),
    (signal.SIGINT, 130, "test", True),  # a background job of a script starts with SIGINT ignored
    (signal.SIGTERM, 143, "test", False),
])
def test_a_signal_stops_the_build_cleanly_and_a_rerun_completes(
        make_stack: MakeStack, registry: str, test_base: str, engine: docker.DockerClient,
        sig: signal.Signals, code: int, step: str, ignore_sigint: bool) -> None:
    stack = make_stack(registry=registry)
    namespace = f"signal-{step}-{sig.name.lower()}-{int(ignore_sigint)}"
    slow_stack(stack, test_base, namespace, sleep_in=step)
    proc = start(stack, "--all", ignore_sigint=ignore_sigint)
    wait_for(stack, "RUN sleep 30" if step == "build" else "$ pytest")
    time.sleep(2)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "Traceback" not in output
    report = json.loads((stack.root / "artifacts" / "build-report.json").read_text())
    assert report["interrupted"] == sig.name
    root, child = report["images"]["root"], report["images"]["child"]
    where = "during the build" if step == "build" else "during the tests"
    # The step it was in, down to the Dockerfile step for a build ("during the build, step 2/3: RUN sleep 30").
    assert root["status"] == "interrupted" and root["reason"].startswith(f"interrupted by {sig.name} {where}"), root
    if step == "build":
        assert root["reason"] == f"interrupted by {sig.name} during the build, step 2/3: RUN sleep 30", root
    assert child["status"] == "interrupted" and child["reason"] == f"interrupted by {sig.name} before it started"
    assert registry_digest(registry, f"{namespace}/root", "2024.1-main") is None  # nothing was pushed
    assert leftovers(engine, report["run_id"]) == []
    assert not (stack.root / "artifacts" / "IMAGES_BUILT").read_text().strip()

    slow_marker(stack).unlink()  # nothing interrupts the rerun: its test need not wait 30 s
    rerun = stack.doit("build", "--all")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert {r["status"] for r in stack.report()["images"].values()} == {"built"}
    assert registry_digest(registry, f"{namespace}/child", "2024.1-main")


def test_a_second_sigint_exits_at_once(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    slow_stack(stack, test_base, "signal-twice", sleep_in="build")
    proc = start(stack, "--all")
    wait_for(stack, "RUN sleep 30")
    proc.send_signal(signal.SIGINT)
    output = ""
    assert proc.stdout is not None
    for line in proc.stdout:  # the first is being handled: the run says it is stopping
        output += line
        if "stopping; nothing new starts" in line:
            break
    proc.send_signal(signal.SIGINT)
    output += proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    # It left at once: the run never got to mark its images or finish its report.
    report = json.loads((stack.root / "artifacts" / "build-report.json").read_text())
    assert report["finished"] is None and report["images"]["child"]["status"] == "pending"


def test_a_hanging_test_times_out_while_a_sibling_branch_finishes(make_stack: MakeStack, registry: str, test_base: str,
                                                                  engine: docker.DockerClient) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="hang-test")
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace("  left:\n", "  left:\n    timeouts: {tests: 8}\n", 1))
    stack.write("images/left/test/test_hangs.py", """\
        import time

        def test_hangs(container):
            container.start(["sleep", "100000"])
            time.sleep(100000)
        """)
    stack.commit("a test that hangs")
    result = stack.doit("build", "--all", timeout=600)
    assert result.returncode != 0
    report = stack.report()
    images = report["images"]
    assert images["left"]["status"] == "failed" and images["left"]["reason"] == "tests timed out after 8 s"
    assert images["leaf"]["status"] == "skipped" and "left failed" in images["leaf"]["reason"]
    assert images["right"]["status"] == "built" and images["root"]["status"] == "built"
    assert leftovers(engine, report["run_id"]) == []

    # The command line overrides the spec for one run.
    again = stack.doit("build", "--image", "left", "--test-timeout", "3", timeout=600)
    assert again.returncode != 0
    assert stack.report()["images"]["left"]["reason"] == "tests timed out after 3 s"
    wrong = stack.doit("build", "--test-timeout", "-5")
    assert wrong.returncode != 0
    assert "--test-timeout -5: give a whole number of seconds from 1 to 86400" in wrong.stdout + wrong.stderr


def test_every_container_of_a_run_carries_its_id(make_stack: MakeStack, registry: str, test_base: str,
                                                 tmp_path: Path) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="labelled")
    stack.write("images/root/test/test_label.py", """\
        import os

        def test_labelled(container):
            started = container.start(["sleep", "5"])
            started.reload()
            assert started.labels["io.stack-builder.run"] == os.environ["STACK_RUN_ID"]
            assert started.labels["io.stack-builder.image"] == "root"
        """)
    stack.commit("label test")
    result = stack.doit("build", "--image", "root")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.report()["images"]["root"]["tests"]["passed"] == 3  # tests_common, test_root and this one


def test_a_signal_during_a_promotion_moves_no_further_tag_and_says_which_moved(
        make_stack: MakeStack, registry: str, test_base: str) -> None:
    from faultproxy import fault_proxy

    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="signal-tag")
    stack.commit("initial")
    built = stack.doit("build", "--all")
    assert built.returncode == 0, built.stdout + built.stderr
    first_move = []

    def rule(method: str, path: str) -> str | None:
        if method == "PUT" and path.endswith("/manifests/2024.1-stable"):
            first_move.append(path)
            return "stall"  # the move lands after 3 s; the signal comes meanwhile
        return None

    with fault_proxy(registry, rule, stall_s=3.0) as (proxy, _):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(stack.root), "tag",
                                 "--tag", "2024.1-main", "--registry", proxy], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not first_move and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    moved = [n for n in ("root", "left", "right", "leaf") if registry_digest(registry, f"signal-tag/{n}", "2024.1-stable")]
    assert len(moved) == 1, (moved, output)  # the move in flight landed; none started after the signal
    assert f"moved now: signal-tag/{moved[0]}:2024.1-stable\n" in output, output
    assert "stopped by SIGINT" in output and "Traceback" not in output
    record = json.loads((stack.root / "artifacts" / "promotion.json").read_text())
    assert record["outcome"] == "interrupted by SIGINT"
