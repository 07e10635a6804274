"""Registries that demand credentials: Bearer tokens (as GHCR and Docker Hub) and Basic over TLS.

A canary password is the registry credential for whole runs (build, test, push, failed build,
refused and successful promotion); it must appear nowhere: not in output, logs, artifacts, the
wiki, JUnit files or doit's database.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from authregistry import basic_tls_registry, bearer_registry
from stacks import MakeStack, Stack, small_stack

pytestmark = pytest.mark.integration

USER = "ci-bot"
CANARY = "canary-5ecret-Pa55-91f3e7"


@pytest.fixture(scope="module")
def binary() -> str:
    found = shutil.which("docker-registry")
    if not found:
        pytest.fail("docker-registry is not installed; run `bash setup.sh env`", pytrace=False)
    return found


def leaks(stack: Stack, outputs: list[subprocess.CompletedProcess[str]]) -> list[str]:
    found = [f"output of {' '.join(r.args[-3:])}" for r in outputs if CANARY in r.stdout + r.stderr]
    for path in stack.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and CANARY.encode() in path.read_bytes():
            found.append(str(path.relative_to(stack.root)))
    return found


def run_everything(stack: Stack, env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Build (one image broken), then fix it and build, refuse a promotion, promote: every path once."""
    results = []
    broken = stack.root / "images" / "right" / "Dockerfile"
    good = broken.read_text()
    broken.write_text(good + "RUN exit 4\n")
    stack.commit("break right")
    results.append(stack.doit("build", "--all", env=env))
    assert results[-1].returncode != 0
    broken.write_text(good)
    stack.commit("fix right")
    results.append(stack.doit("build", "--all", env=env))
    assert results[-1].returncode == 0, results[-1].stdout + results[-1].stderr
    # What the broken run pushed is reused (same input keys); only the fixed image is built.
    assert {n: r["status"] for n, r in stack.report()["images"].items()} == {
        "root": "reused", "left": "reused", "leaf": "reused", "right": "built"}
    results.append(stack.doit("tag", "--tag", "2024.1-nosuchbranch", env=env))
    assert results[-1].returncode != 0
    results.append(stack.doit("tag", "--tag", "2024.1-main", env=env))
    assert results[-1].returncode == 0, results[-1].stdout + results[-1].stderr
    results.append(stack.doit("manifest", "--image", "leaf", "--tag", "2024.1-stable", env=env))
    assert results[-1].returncode == 0, results[-1].stdout + results[-1].stderr
    return results


def test_bearer_token_registry_end_to_end_without_leaking(make_stack: MakeStack, binary: str, test_base: str,
                                                          tmp_path: Path) -> None:
    with bearer_registry(binary, tmp_path / "bearer", USER, CANARY) as (host, issued):
        stack = make_stack(registry=host)
        small_stack(stack, test_base, namespace="bearer")
        env = {"STACK_REGISTRY_USER": USER, "STACK_REGISTRY_PASSWORD": CANARY}

        no_login = stack.doit("tag", "--tag", "2024.1-main", env={"STACK_REGISTRY_USER": "",
                                                                  "STACK_REGISTRY_PASSWORD": ""})
        assert no_login.returncode != 0
        assert "refused the credentials" in no_login.stdout + no_login.stderr

        results = run_everything(stack, env)
        assert issued["issued"] > 0  # tokens really came from the issuer

        wrong = stack.doit("tag", "--tag", "2024.1-main", env={**env, "STACK_REGISTRY_PASSWORD": "wrong-" + CANARY})
        assert wrong.returncode != 0 and "refused the credentials (HTTP 401)" in wrong.stdout + wrong.stderr
        assert "Traceback" not in wrong.stdout + wrong.stderr
        results += [no_login, wrong]
        assert leaks(stack, results) == []


def test_basic_auth_over_tls_end_to_end_without_leaking(make_stack: MakeStack, binary: str, test_base: str,
                                                        tmp_path: Path) -> None:
    with basic_tls_registry(binary, tmp_path / "basic", USER, CANARY) as (host, ca):
        stack = make_stack(registry=host)
        small_stack(stack, test_base, namespace="basic")
        # No TLS flag: a loopback registry is tried over HTTPS first, as dockerd does; the CA is trusted.
        env = {"STACK_REGISTRY_USER": USER, "STACK_REGISTRY_PASSWORD": CANARY, "STACK_REGISTRY_CA": str(ca)}
        results = run_everything(stack, env)
        denied = stack.doit("tag", "--tag", "2024.1-main", env={**env, "STACK_REGISTRY_PASSWORD": "nope"})
        assert denied.returncode != 0
        assert f"refused the credentials of '{USER}' (HTTP 401)" in denied.stdout + denied.stderr
        assert leaks(stack, [*results, denied]) == []
