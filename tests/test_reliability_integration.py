"""Faults on the real engine and registry: a flaky registry, a registry that is down, an engine that is
missing or dies mid-build, concurrent builds and racing promotions. After each, the report is complete.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from faultproxy import EngineLine, fault_proxy
from stack_builder.release import promote
from stack_builder.errors import RegistryError, StackError
from stack_builder.registry.client import RegistryClient
from stack_builder.spec.stack_spec import load_spec
from stacks import DODO, MakeStack, Stack, free_port, registry_digest, small_stack

pytestmark = pytest.mark.integration
TERMINAL = {"built", "reused", "failed", "skipped", "unchanged"}


def assert_complete(stack: Stack) -> dict[str, Any]:
    """The report is valid JSON and every image has a final status with a reason."""
    report = stack.report()
    for name, result in report["images"].items():
        assert result["status"] in TERMINAL, (name, result)
        assert result["reason"], name
    return report


def test_only_transient_failures_are_retried(registry: str, make_stack: MakeStack, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="retry")
    assert stack.doit("build", "--all", "--image", "root").returncode == 0
    seen: list[tuple[str, str]] = []
    plan: dict[str, object] = {}

    def rule(method: str, path: str) -> int | str | None:
        seen.append((method, path))
        return plan.get(path)  # type: ignore[return-value]

    manifest = "/v2/retry/root/manifests/2024.1-main"
    with fault_proxy(registry, rule) as (proxy, counts):
        client = RegistryClient(proxy, backoff=0.01)
        # 404 "manifest unknown": one request, a plain answer.
        assert client.get_manifest("retry/none", "2024.1-main") is None
        assert seen.count(("GET", "/v2/retry/none/manifests/2024.1-main")) == 1
        # A digest mismatch is definitive: reported at once, not retried.
        plan[manifest] = "corrupt"
        with pytest.raises(RegistryError, match="digest mismatch"):
            client.get_manifest("retry/root", "2024.1-main")
        assert seen.count(("GET", manifest)) == 1
        # 401 without credentials: definitive.
        plan[manifest] = 401
        with pytest.raises(RegistryError, match="requires login"):
            client.get_manifest("retry/root", "2024.1-main")
        assert seen.count(("GET", manifest)) == 2
        assert counts["injected"] == 2


def test_transient_then_success(registry: str, make_stack: MakeStack, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="transient")
    assert stack.doit("build", "--all", "--image", "root").returncode == 0
    answers = iter([503, "reset", "truncate", None])
    path = "/v2/transient/root/manifests/2024.1-main"
    with fault_proxy(registry, lambda m, p: next(answers) if p == path and m == "GET" else None) as (proxy, _):
        client = RegistryClient(proxy, backoff=0.01)
        manifest = client.get_manifest("transient/root", "2024.1-main")
    assert manifest is not None and manifest.digest == registry_digest(registry, "transient/root", "2024.1-main")
    assert client.stats["retries"] == 3


def test_build_and_promotion_complete_with_20_percent_faults(make_stack: MakeStack, registry: str, test_base: str,
                                                             tmp_path: Path) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="flaky")
    rng = random.Random(20)
    kinds: list[int | str] = [500, 502, 503, "reset", "stall", "truncate"]
    injected: list[str] = []

    def twenty_percent(method: str, path: str) -> int | str | None:
        if path == "/v2/" or rng.random() >= 0.2:
            return None
        kind = kinds[len(injected) % len(kinds)]
        injected.append(str(kind))
        return kind

    env = {"STACK_REGISTRY_TIMEOUT": "2"}
    with fault_proxy(registry, twenty_percent, stall_s=3.0) as (proxy, counts):
        built = stack.doit("build", "--all", "--registry", proxy, env=env)
        assert built.returncode == 0, built.stdout + built.stderr[-3000:]
        tagged = stack.doit("tag", "--tag", "2024.1-main", "--registry", proxy, env=env)
        assert tagged.returncode == 0, tagged.stdout + tagged.stderr[-3000:]
    report = assert_complete(stack)
    for name, result in report["images"].items():
        assert result["status"] == "built"
        # What the report says was pushed is what the real registry holds, under both tags.
        assert registry_digest(registry, f"flaky/{name}", "2024.1-main") == result["digest"]
        assert registry_digest(registry, f"flaky/{name}", "2024.1-stable") == result["digest"]
    promotion = json.loads((stack.root / "artifacts" / "promotion.json").read_text())
    figures = {"requests": counts["forwarded"] + counts["injected"], "injected": counts["injected"],
               "by_kind": {k: counts.get(k, 0) for k in map(str, kinds)},
               "build_client_retries": report["registry_stats"]["retries"],
               "build_push_retries": report["registry_stats"]["push_retries"],
               "promotion_retries": promotion["registry_stats"]["retries"],
               "outcome": "all images built, pushed and promoted"}
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    print("fault figures:", json.dumps(figures))
    assert counts["injected"] >= 10
    # Faults hit the engine's pushes and our own requests; both recovered by retrying.
    assert figures["build_push_retries"] + figures["build_client_retries"] + figures["promotion_retries"] >= 1


def test_registry_down_stops_clearly_and_a_rerun_completes(make_stack: MakeStack, registry: str,
                                                           test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="down")
    down = f"127.0.0.1:{free_port()}"
    result = stack.doit("build", "--all", "--registry", down, env={"STACK_REGISTRY_TIMEOUT": "1"})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"registry {down} is not running or not reachable" in output and "bash setup.sh env" in output
    assert "Traceback" not in output
    assert not (stack.root / "artifacts" / "IMAGES_BUILT").exists()
    rerun = stack.doit("build", "--all")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert {r["status"] for r in assert_complete(stack)["images"].values()} == {"built"}


def test_registry_dying_mid_run_reports_only_what_is_in_the_registry(make_stack: MakeStack, registry: str,
                                                                     test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="dying")
    state = {"down": False}

    def rule(method: str, path: str) -> int | str | None:
        # Once the root is pushed, every request fails: the registry has gone away.
        if method == "PUT" and path == "/v2/dying/root/manifests/2024.1-main":
            threading.Timer(0.5, lambda: state.update(down=True)).start()
        return "reset" if state["down"] else None

    with fault_proxy(registry, rule) as (proxy, _):
        result = stack.doit("build", "--all", "--registry", proxy, env={"STACK_REGISTRY_TIMEOUT": "1"})
    assert result.returncode != 0
    report = assert_complete(stack)
    for ref in stack.lines("IMAGES_BUILT"):
        host_path, tag = ref.rsplit(":", 1)
        assert registry_digest(registry, host_path.split("/", 1)[1], tag), f"{ref} reported pushed but missing"
    assert any(r["status"] == "failed" for r in report["images"].values())
    rerun = stack.doit("build", "--all")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # The root made it into the registry before it died: the rerun reuses it and builds the rest.
    assert {n: r["status"] for n, r in assert_complete(stack)["images"].items()} == {
        "root": "reused", "left": "built", "leaf": "built", "right": "built"}


def test_no_engine_says_how_to_start_one(make_stack: MakeStack, tmp_path: Path, test_base: str) -> None:
    stack = make_stack(registry="127.0.0.1:1")
    small_stack(stack, test_base, namespace="noengine")
    socket = f"unix://{tmp_path}/no-engine.sock"
    result = stack.doit("build", "--all", "--no-push", env={"DOCKER_HOST": socket})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"no Docker engine answers at {socket}" in output and "bash setup.sh env" in output
    assert "Traceback" not in output


def test_engine_dying_mid_build_fails_that_image_and_skips_its_descendants(make_stack: MakeStack, registry: str,
                                                                            test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="enginedies")
    stack.write("images/left/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG NONCE\n"
                                          "RUN echo $NONCE && sleep 20 && echo left > /left.txt\n")
    stack.write("spec.yml", (stack.root / "spec.yml").read_text().replace(
        "    depend_on: root\n  leaf:", f"    depend_on: root\n    build_args: {{NONCE: '{time.time()}'}}\n  leaf:"))
    stack.commit("slow left")
    line = EngineLine()
    process = subprocess.Popen(
        ["bash", "-c", 'exec "$0" -m doit -f "$1" -d "$2" build --all', *_doit_argv(stack)],
        env={**_env(stack), "DOCKER_HOST": f"tcp://{line.address}"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    log = stack.root / "artifacts" / "logs" / "left.log"
    while not (log.is_file() and "sleep 20" in log.read_text()):  # the build log is live: the RUN step began
        assert time.monotonic() < deadline and process.poll() is None, "left's RUN step never started"
        time.sleep(0.2)
    time.sleep(2)
    line.cut()  # the engine goes away while left's RUN sleeps
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    report = assert_complete(stack)
    images = report["images"]
    assert images["root"]["status"] == "built"
    assert images["left"]["status"] == "failed" and "engine" in images["left"]["reason"].lower()
    assert images["leaf"]["status"] == "skipped" and images["leaf"]["reason"] == "ancestor left failed"
    assert "Traceback" not in output


def _doit_argv(stack: Stack) -> list[str]:
    return [sys.executable, str(DODO), str(stack.root)]


def _env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["STACK_REGISTRY"] = str(stack.registry)
    return env


def test_two_builds_at_once_take_turns(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="concurrent")
    command = ["bash", "-c", 'exec "$0" -m doit -f "$1" -d "$2" build --all', *_doit_argv(stack)]
    first = subprocess.Popen(command, env=_env(stack), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    second = subprocess.Popen(command, env=_env(stack), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_first, _ = first.communicate(timeout=600)
    out_second, _ = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, out_first + out_second
    assert "another build is running in this stack" in out_second
    # The second waited its turn, then found every input key published by the first: nothing to build.
    assert {r["status"] for r in assert_complete(stack)["images"].values()} == {"reused"}
    json.loads((stack.root / ".doit.json").read_text())  # doit's own database is intact


def test_racing_promotions_one_wins_the_other_refuses(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="race")
    assert stack.doit("build", "--all").returncode == 0
    stack.repo.git.checkout("-b", "dev")
    dockerfile = stack.root / "images" / "root" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo dev > /dev.txt\n")
    stack.commit("dev")
    assert stack.doit("build", "--all").returncode == 0
    spec = load_spec(stack.root)
    client = RegistryClient(registry)
    main_plan = promote.plan(spec, client, registry, "2024.1-main", global_stable=False, skip_gpu_test=False)
    dev_plan = promote.plan(spec, client, registry, "2024.1-dev", global_stable=False, skip_gpu_test=False)
    promote.execute(main_plan, client)
    with pytest.raises(StackError, match="changed after planning .* another promotion is running"):
        promote.execute(dev_plan, client)
    assert [m.state for m in dev_plan] == ["failed", "not run", "not run", "not run"]
    assert registry_digest(registry, "race/root", "2024.1-stable") == main_plan[0].source_digest

