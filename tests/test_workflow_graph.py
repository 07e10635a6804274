"""main.yml's job graph, run locally: each job's own `run:` scripts, in `needs` order, per matrix entry.

Every job starts in a fresh clone of the stack with none of the stack's images in the engine, so
a child's parent can only come from the registry: the fan-out works across machines that share
nothing but the registry. Only `uses:` steps are stood in for: the fresh clone is the checkout,
this interpreter (with the builder) is setup-python, and a bare repository is the wiki.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import git
import pytest
import yaml

from stack_builder.registry.client import RegistryClient
from stacks import DODO, REPO, Stack, ensure_test_base_arm64

pytestmark = pytest.mark.integration

EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
FROM_JSON = re.compile(r"^\$\{\{\s*fromJSON\(([\w.-]+)\)\s*\}\}$")
INSTALL_STEP = "python -m pip install ."


def order_jobs(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        for name, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if name not in done and all(n in done for n in needs):
                done.append(name)
    return done


def evaluate(value: str, context: dict[str, Any]) -> str:
    """Substitute ${{ a.b.c }} from ``context``; any other expression fails the test."""
    def lookup(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise AssertionError(f"the workflow uses ${{{{ {match.group(1)} }}}}, which this test does not model")
            node = node[part]
        return node if isinstance(node, str) else json.dumps(node)
    return EXPRESSION.sub(lookup, str(value))


def empty_engine_of(engine: docker.DockerClient, prefixes: tuple[str, ...]) -> None:
    """Remove every image of the stack from the engine (children first, as parents have dependents)."""
    for _ in range(5):
        left = [i for i in engine.images.list() if any(t.startswith(prefixes) for t in i.tags)]
        if not left:
            return
        for image in left:
            try:
                engine.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass  # a parent of another image still here: the next round removes it
    raise AssertionError("the stack's images could not all be removed from the engine")


def write_stack(stack: Stack, base: str) -> None:
    stack.write("spec.yml", """\
images:
  root:
    image_name: ghcr.io/graph/root
    platforms: [linux/amd64, linux/arm64]
  child:
    image_name: ghcr.io/graph/child
    depend_on: root
    platforms: [linux/amd64, linux/arm64]
  solo:
    image_name: ghcr.io/graph/solo
    depend_on: root
    info_cmds: [ARCH]
tag:
  prefix: "2024.1"
all_info_cmds:
  ARCH: {description: Machine, command: uname -m}
""")
    stack.write(".gitignore", "artifacts/\n.doit.json*\nimages.txt\n")
    stack.write("images/root/Dockerfile", f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\nRUN uname -m > /root-arch\n")
    for name in ("child", "solo"):
        stack.write(f"images/{name}/Dockerfile", f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {name} > /{name}\n")
    stack.write("images/tests_common/test_runs.py", """\
        def test_runs(container):
            assert container.run(["true"])[0] == 0
        """)
    stack.commit("stack")


def test_main_workflow_job_graph_across_empty_machines(tmp_path: Path, registry: str, engine: docker.DockerClient,
                                                        test_base: str) -> None:
    ensure_test_base_arm64(engine)
    origin = Stack(tmp_path / "origin", registry)
    write_stack(origin, test_base)
    wiki_remote = tmp_path / "wiki.git"
    git.Repo.init(wiki_remote, bare=True, initial_branch="master")

    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "doit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m doit -f "{DODO}" -d "$PWD" "$@"\n')
    (shim / "doit").chmod(0o755)

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "main.yml").read_text())
    sha = origin.repo.head.commit.hexsha
    context: dict[str, Any] = {
        "github": {"actor": "tester", "ref": "refs/heads/main", "event_name": "workflow_dispatch",
                   "repository": "org/stack", "sha": sha},
        "inputs": {"all": "true"}, "secrets": {"GITHUB_TOKEN": "not-a-real-token"}, "needs": {}}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "STACK_"))}
    ran: list[str] = []

    for name in order_jobs(workflow["jobs"]):
        job = workflow["jobs"][name]
        include = job.get("strategy", {}).get("matrix", {}).get("include")
        if include:
            inner = FROM_JSON.match(include)
            assert inner, f"{name}: matrix include {include!r} is not fromJSON(<output>)"
            entries = json.loads(evaluate("${{ " + inner.group(1) + " }}", context))
        else:
            entries = [{}]
        if not entries:
            continue  # its `if:` skips a level with nothing in it
        outputs: dict[str, str] = {}
        for index, entry in enumerate(entries):
            workspace = tmp_path / "jobs" / f"{name}-{index}"
            git.Repo.clone_from(origin.root, workspace)
            empty_engine_of(engine, (f"{registry}/graph/", "ghcr.io/graph/"))
            github_output = tmp_path / "jobs" / f"{name}-{index}.out"
            github_output.write_text("")
            step_context = {**context, "matrix": entry}
            for step in job["steps"]:
                if "uses" in step:
                    if str(step.get("with", {}).get("repository", "")).endswith(".wiki"):
                        git.Repo.clone_from(wiki_remote, workspace / step["with"]["path"])
                    continue
                if step["run"].strip() == INSTALL_STEP:
                    continue  # this interpreter has the builder; the shim runs it
                env = {**base_env, **{k: evaluate(v, step_context) for k, v in {
                    **workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}.items()}}
                # The one difference from GitHub: the tests' registry instead of ghcr.io.
                env.update(STACK_REGISTRY=registry, GITHUB_OUTPUT=str(github_output), GITHUB_SHA=sha,
                           GITHUB_ACTOR="tester", GITHUB_REF_NAME="main", PATH=f"{shim}:{env['PATH']}")
                cwd = workspace / step.get("working-directory", ".")
                result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=cwd, env=env,
                                        capture_output=True, text=True, timeout=900, check=False)
                assert result.returncode == 0, f"{name}[{entry}] step {step.get('name')}:\n{result.stdout}\n" \
                                               f"{result.stderr[-3000:]}"
            for line in github_output.read_text().splitlines():
                key, _, value = line.partition("=")
                outputs[key] = value
            ran.append(f"{name}:{entry.get('image', '')}:{entry.get('platform', '')}".rstrip(":"))
        context["needs"][name] = {"outputs": outputs, "result": "success"}

    assert ran == ["plan", "level0:root:linux/amd64", "level0:root:linux/arm64", "level1:child:linux/amd64",
                   "level1:child:linux/arm64", "level1:solo:linux/amd64", "merge", "wiki"]
    client = RegistryClient(registry)
    for name in ("root", "child"):
        index = client.get_manifest(f"graph/{name}", "2024.1-main")
        assert index is not None
        platforms = [m["platform"]["architecture"] for m in json.loads(index.body).get("manifests", [])]
        assert platforms == ["amd64", "arm64"], name
    assert client.manifest_digest("graph/solo", "2024.1-main") is not None
    # The wiki job published pages for every image to the wiki repository.
    published = git.Repo.clone_from(wiki_remote, tmp_path / "wiki-check")
    pages = {p.name for p in Path(published.working_tree_dir or "").glob("*.md")}
    assert {"Home.md", "Stable_Tag.md", "root-2024.1-main.md", "child-2024.1-main.md", "solo-2024.1-main.md"} <= pages
    assert "Manifests for" in published.head.commit.message
