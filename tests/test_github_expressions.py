"""The workflows' conditions, evaluated: every ``if:`` can be true in some real run, the main
workflow runs the jobs it should for pushes, pull requests and manual runs, and the evaluator
itself follows GitHub's rules (and refuses what it does not model)."""
from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any, Iterator, Mapping

import pytest
import yaml

from gha_expressions import (ExpressionError, Run, Status, condition, evaluate, needs_context, needs_of, order_jobs,
                             parse, references, render, simulate)
from stacks import REPO

WORKFLOWS = REPO / ".github" / "workflows"
SHA = "0123456789abcdef0123456789abcdef01234567"


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as true
        workflow["on"] = workflow.pop(True)
    return dict(workflow)


def workflow_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


# --- The evaluator -------------------------------------------------------------------------------------

GITHUB = {"event_name": "push", "ref": "refs/heads/main", "event": {"head_commit": {"message": "Fix [Skip CI]"}}}


@pytest.mark.parametrize(("expression", "expected"), [
    ("'it''s'", "it's"),
    ("github.ref == 'refs/heads/main'", True),
    ("github.ref == 'REFS/HEADS/MAIN'", True),  # strings compare ignoring case
    ("github.ref != 'refs/heads/main'", False),
    ("github['ref']", "refs/heads/main"),
    ("github.no_such_property", None),
    ("github.event.pull_request.title", None),  # missing properties are null, however deep
    ("null == ''", True),  # different types compare as numbers: both 0
    ("'1' == 1", True),
    ("true == 1", True),
    ("'a' == 0", False),  # NaN equals nothing
    ("!''", True),
    ("!'false'", False),  # a non-empty string is true, whatever it says
    ("'' || 'x'", "x"),  # || and && give an operand
    ("'a' && 'b'", "b"),
    ("!(github.event_name == 'push') || true", True),
    ("!github.event_name == 'push'", False),  # ! binds tighter than ==
    ("contains(github.event.head_commit.message, 'skip ci')", True),  # case-insensitive
    ("contains(github.event.no_message, 'skip ci')", False),  # null searches as ''
    ("contains(fromJSON('[\"a\", \"b\"]'), 'B')", True),
    ("contains(fromJSON('[\"a\", \"b\"]'), 'c')", False),
    ("startsWith(github.ref, 'refs/heads/')", True),
    ("startsWith(github.ref, 'refs/tags/')", False),
    ("fromJSON('[{\"image\": \"x\"}]')[0].image", "x"),
    ("fromJSON('[]')", []),
])
def test_expressions(expression: str, expected: Any) -> None:
    assert evaluate(expression, {"github": GITHUB}) == expected


@pytest.mark.parametrize("expression", [
    "github.ref < 'z'",  # an operator not modelled
    "github.ref =~ 'main'",
    "format('{0}', github.ref)",  # a function not modelled
    "hashFiles('**/x')",
    "contains(github.ref)",  # wrong number of arguments
    "gihtub.ref == 'x'",  # an unknown context
    "github.ref ==",  # incomplete
    "(github.ref",
    "'unterminated",
    "github.ref 'x'",
    "${{ github.ref }} && ${{ github.sha }}",  # two expressions, which GitHub reads as a string
    "",
    "github.",
    "success(1)",
])
def test_unknown_syntax_raises(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, {"github": GITHUB}, Status())


def test_a_context_not_given_raises() -> None:
    with pytest.raises(ExpressionError, match="inputs context"):
        evaluate("inputs.all", {"github": GITHUB})


def test_conditions_without_a_status_function_need_success() -> None:
    contexts = {"github": GITHUB}
    assert condition("${{ github.ref == 'refs/heads/main' }}", contexts, Status(success=True))
    assert not condition("${{ github.ref == 'refs/heads/main' }}", contexts, Status(success=False))
    assert condition("${{ !cancelled() && github.ref == 'refs/heads/main' }}", contexts, Status(success=False))
    assert not condition("${{ !cancelled() }}", contexts, Status(cancelled=True))
    assert condition("always()", contexts, Status(success=False, cancelled=True))
    assert condition("failure()", contexts, Status(success=False, failure=True))
    assert not condition("success()", contexts, Status(success=True, cancelled=True))
    assert condition(None, contexts, Status()) and not condition(None, contexts, Status(success=False))
    assert not condition(False, contexts, Status())


def test_references() -> None:
    node = parse("${{ !cancelled() && needs.plan.result == 'success' && needs.plan.outputs.level1 != '[]' }}")
    assert references(node) == {"needs.plan.result", "needs.plan.outputs.level1"}


def test_render() -> None:
    contexts = {"github": GITHUB, "needs": {"plan": {"outputs": {"level0": '[{"image": "root"}]'}}}}
    assert render("${{ fromJSON(needs.plan.outputs.level0) }}", contexts) == [{"image": "root"}]
    assert render("main-${{ github.ref }}", contexts) == "main-refs/heads/main"
    assert render("${{ github.event_name == 'pull_request' }}", contexts) is False
    assert render("x${{ github.nothing }}y${{ github.event_name == 'push' }}", contexts) == "xytrue"
    assert render(3, contexts) == 3


# --- order_jobs -----------------------------------------------------------------------------------------


def test_order_jobs_puts_needs_first() -> None:
    jobs = {"c": {"needs": ["a", "b"]}, "b": {"needs": "a"}, "a": {}, "d": {}}
    assert order_jobs(jobs) == ["a", "b", "c", "d"]
    assert order_jobs(load("stack-build.yml")["jobs"]) == ["plan", "level0", "level1", "level2", "level3", "level4",
                                                     "merge", "wiki"]


def test_order_jobs_names_a_missing_job() -> None:
    with pytest.raises(ValueError, match=r"job 'merge' needs 'buld', which is not a job of this workflow"):
        order_jobs({"build": {}, "merge": {"needs": ["build", "buld"]}})


@pytest.mark.parametrize(("jobs", "cycle"), [
    ({"a": {"needs": "b"}, "b": {"needs": "a"}, "c": {}}, "a -> b -> a"),
    ({"x": {}, "a": {"needs": ["x", "c"]}, "b": {"needs": "a"}, "c": {"needs": "b"}}, "a -> c -> b -> a"),
    ({"a": {"needs": "a"}}, "a -> a"),
])
def test_order_jobs_names_a_cycle(jobs: dict[str, Any], cycle: str) -> None:
    with pytest.raises(ValueError, match="jobs need each other in a cycle: " + cycle.replace(">", r"\>")):
        order_jobs(jobs)


# --- Realistic runs of each workflow --------------------------------------------------------------------

MATRIX_ENTRY = {"image": "root", "platform": "linux/amd64", "runner": "ubuntu-latest"}


def plan_outputs(depth: int) -> dict[str, str]:
    """What stack-build.yml's plan job hands on for a stack whose changed images fill ``depth`` levels."""
    levels = {f"level{i}": json.dumps([MATRIX_ENTRY] if i < depth else []) for i in range(5)}
    return {**levels, "images": json.dumps(["root"] * min(depth, 1)), "tag": "2024.1-main"}


# Jobs with outputs, and the outputs they give in real runs. A job with outputs not listed here
# fails the tests below: model what it can hand on before trusting conditions that read it.
OUTPUTS: dict[tuple[str, str], list[dict[str, str]]] = {
    ("stack-build.yml", "plan"): [plan_outputs(depth) for depth in range(6)],
    ("stack-precalc.yml", "shards"): [{"shards": json.dumps([{"shard": i} for i in range(n)]), "count": str(n)}
                                      for n in (1, 3)],
}


def triggers(workflow: Mapping[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {name: None for name in on}
    return dict(on)


def input_values(spec: Mapping[str, Any]) -> list[Any]:
    kind = spec.get("type", "string")
    if kind == "boolean":
        return [True, False]
    if kind == "choice":
        return list(spec["options"])
    if kind in ("string", "environment"):
        return ["2024.1-main"] + ([] if spec.get("required") else [""])
    if kind == "number":
        return [0, 1]
    raise AssertionError(f"input type {kind!r} is not modelled")


def events(workflow: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, contexts) for each kind of run the workflow's triggers allow."""
    base = {"actor": "someone", "repository": "org/stack", "sha": SHA, "workflow": workflow.get("name", "")}
    for trigger, settings in triggers(workflow).items():
        if trigger == "push":
            for ref, message in itertools.product(("refs/heads/main", "refs/heads/feature", "refs/tags/v1"),
                                                  ("Add an image", "Typo [skip ci]")):
                yield f"push {ref} {message!r}", {"github": {**base, "event_name": "push", "ref": ref, "event": {
                    "head_commit": {"message": message}, "before": SHA}}, "inputs": {}}
        elif trigger == "pull_request":
            yield "pull_request", {"github": {**base, "event_name": "pull_request", "ref": "refs/pull/7/merge",
                                              "head_ref": "feature", "base_ref": "main",
                                              "event": {"pull_request": {"number": 7}}}, "inputs": {}}
        elif trigger in ("workflow_dispatch", "workflow_call"):
            declared = (settings or {}).get("inputs") or {}
            for values in itertools.product(*(input_values(spec) for spec in declared.values())):
                inputs = dict(zip(declared, values))
                for ref in ("refs/heads/main", "refs/heads/feature"):
                    event = {"inputs": inputs} if trigger == "workflow_dispatch" else {}
                    yield f"{trigger} {ref} {inputs}", {"github": {**base, "event_name": trigger, "ref": ref,
                                                                   "event": event}, "inputs": inputs}
        elif trigger == "schedule":  # runs on the default branch, with no inputs
            yield "schedule", {"github": {**base, "event_name": "schedule", "ref": "refs/heads/main",
                                          "event": {"schedule": "17 4 * * 1"}}, "inputs": {}}
        else:
            raise AssertionError(f"the trigger {trigger!r} is not modelled")


def outcomes(name: str, workflow: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """(label, {job: result when run}, {job: outputs}): all succeed, or one fails; each output variant."""
    jobs = list(workflow["jobs"])
    variants: list[dict[str, dict[str, str]]] = [{}]
    for job_name, job in workflow["jobs"].items():
        if job.get("outputs"):
            assert (name, job_name) in OUTPUTS, f"{name}: the outputs of job {job_name} are not modelled"
            variants = [{**v, job_name: o} for v in variants for o in OUTPUTS[(name, job_name)]]
    for failing in [None, *jobs]:
        for outputs in variants:
            label = f"{failing} fails" if failing else "all succeed"
            yield label + (f", outputs {outputs}" if outputs else ""), \
                {j: "failure" if j == failing else "success" for j in jobs}, outputs


def matrix_of(job: Mapping[str, Any], contexts: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    include = ((job.get("strategy") or {}).get("matrix") or {}).get("include")
    if include is None:
        return None
    entries = render(include, contexts)
    assert isinstance(entries, list), f"matrix include {include!r} gave {entries!r}, not a list"
    return entries


def simulated_runs(name: str, workflow: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Run, list[str]]]:
    """Every realistic run of ``workflow`` (file ``name``): (label, event contexts, Run, problems seen)."""
    for event_label, event in events(workflow):
        for outcome_label, results, outputs in outcomes(name, workflow):
            problems: list[str] = []

            def job(job_name: str, here: Mapping[str, Any]) -> tuple[str, Mapping[str, str]]:
                entries = matrix_of(workflow["jobs"][job_name], here)
                if entries == []:
                    problems.append(f"{job_name} runs with an empty matrix, which GitHub fails")
                    return "failure", {}
                return results[job_name], outputs.get(job_name, {}) if results[job_name] == "success" else {}

            contexts = {**event, "secrets": {"GITHUB_TOKEN": "token"}}
            yield f"{event_label}, {outcome_label}", contexts, simulate(workflow, contexts, job), problems


def never_true(name: str, workflow: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(jobs and steps whose if: no realistic run makes true, other problems seen in those runs)."""
    jobs = workflow["jobs"]
    ran: set[str] = set()
    steps_ran: set[tuple[str, int]] = set()
    problems: set[str] = set()
    for label, contexts, run, seen in simulated_runs(name, workflow):
        problems.update(f"{label}: {p}" for p in seen)
        for job_name in run.ran():
            ran.add(job_name)
            here = {**contexts, "needs": needs_context(jobs, job_name, run.results, run.outputs), "steps": {},
                    "env": {}}
            here["matrix"] = (matrix_of(jobs[job_name], here) or [{}])[0]
            for index, step in enumerate(jobs[job_name].get("steps") or []):
                if condition(step.get("if"), here, Status()):
                    steps_ran.add((job_name, index))
    never = [j for j in jobs if j not in ran]
    never += [f"{j}.steps[{i}] ({s.get('name', '')})" for j, job in jobs.items() if j in ran
              for i, s in enumerate(job.get("steps") or []) if "if" in s and (j, i) not in steps_ran]
    return never, sorted(problems)


@pytest.mark.parametrize("name", workflow_files())
def test_every_condition_can_be_true(name: str) -> None:
    """For every job's and step's ``if:``, some realistic run (push, pull request, manual run with
    any inputs; all jobs succeeding or one failing) makes it true: a gate that can never open is a bug.
    And no job runs with an empty matrix."""
    never, problems = never_true(name, load(name))
    assert not never, f"{name}: these never run, whatever the event, inputs or results: {never}"
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("name", workflow_files())
def test_expressions_read_only_what_exists(name: str) -> None:
    """Every expression parses, and names only the jobs it needs, their declared outputs, declared inputs
    and its own steps' ids (GitHub gives null for anything else, silently)."""
    workflow = load(name)
    declared_inputs: set[str] = set()
    for settings in triggers(workflow).values():
        declared_inputs |= set((settings.get("inputs") if isinstance(settings, dict) else None) or {})
    problems = []
    for job_name, job in workflow["jobs"].items():
        step_ids = {s["id"] for s in job.get("steps") or [] if "id" in s}
        for where, text in expressions_in(job, f"jobs.{job_name}"):
            try:
                node = parse(text)
            except ExpressionError as exc:
                problems.append(f"{where}: {exc}")
                continue
            for path in references(node):
                parts = path.split(".")
                if parts[0] == "needs" and len(parts) > 1:
                    if parts[1] not in needs_of(job):
                        problems.append(f"{where}: reads needs.{parts[1]}, which the job does not need")
                    elif len(parts) > 3 and parts[2] == "outputs" and parts[3] not in (
                            workflow["jobs"][parts[1]].get("outputs") or {}):
                        problems.append(f"{where}: reads {path}, which job {parts[1]} does not output")
                    elif len(parts) > 2 and parts[2] not in ("outputs", "result"):
                        problems.append(f"{where}: reads {path}: needs.<job> has only outputs and result")
                if parts[0] == "inputs" and len(parts) > 1 and parts[1] not in declared_inputs:
                    problems.append(f"{where}: reads {path}, which is not a declared input")
                if parts[0] == "steps" and len(parts) > 1 and parts[1] not in step_ids:
                    problems.append(f"{where}: reads {path}, but no step of {job_name} has that id")
    assert not problems, "\n".join(problems)


def expressions_in(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every expression in a job: each ``${{ }}`` in its strings, and each ``if:`` (braces optional)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if" and isinstance(value, str):
                yield f"{where}.if", value
            elif key == "run":
                continue  # scripts read values through env: (test_bad_input checks none is pasted in)
            else:
                yield from expressions_in(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from expressions_in(value, f"{where}[{index}]")
    elif isinstance(node, str):
        for match in re.finditer(r"\$\{\{(.*?)\}\}", node, re.DOTALL):
            yield where, match.group(1)


# --- The main workflow, run by run ----------------------------------------------------------------------


def run_main(event: dict[str, Any], depth: int, failing: str | None = None,
             workflow: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(jobs that ran, jobs skipped) in a run of stack-build.yml (main.yml's build) whose plan fills ``depth`` levels."""
    workflow = workflow or load("stack-build.yml")

    def job(name: str, here: Mapping[str, Any]) -> tuple[str, Mapping[str, str]]:
        entries = matrix_of(workflow["jobs"][name], here)
        assert entries != [], f"{name} ran with an empty matrix"
        if name == failing:
            return "failure", {}
        return "success", plan_outputs(depth) if name == "plan" else {}

    run = simulate(workflow, {"inputs": {}, "secrets": {}, **event}, job)
    return run.ran(), [n for n, r in run.results.items() if r == "skipped"]


def push(ref: str = "refs/heads/main", message: str = "Add an image") -> dict[str, Any]:
    return {"github": {"event_name": "push", "ref": ref, "repository": "org/stack",
                       "event": {"head_commit": {"message": message}}}}


PULL_REQUEST = {"github": {"event_name": "pull_request", "ref": "refs/pull/7/merge", "repository": "org/stack",
                           "event": {"pull_request": {"number": 7}}}}
DISPATCH_ALL = {"github": {"event_name": "workflow_dispatch", "ref": "refs/heads/main", "repository": "org/stack",
                           "event": {"inputs": {"all": True}}}, "inputs": {"all": True}}
def test_a_push_to_main_with_every_level_builds_and_publishes() -> None:
    ran, skipped = run_main(push(), depth=5)
    assert ran == ["plan", "level0", "level1", "level2", "level3", "level4", "merge", "wiki"] and not skipped


def test_a_push_to_main_with_two_levels_builds_and_publishes() -> None:
    ran, skipped = run_main(push(), depth=2)
    assert ran == ["plan", "level0", "level1", "merge", "wiki"], skipped
    assert skipped == ["level2", "level3", "level4"]


def test_a_manual_run_of_everything_on_main_publishes() -> None:
    ran, _ = run_main(DISPATCH_ALL, depth=3)
    assert ran == ["plan", "level0", "level1", "level2", "merge", "wiki"]


def test_a_shallow_stack_publishes_only_after_a_clean_build_on_main() -> None:
    """GitHub adds success() to an if: without a status function, which is false when any job needed even
    indirectly was skipped (a shallow stack skips level2-4; actions/runner#2205): the wiki job says
    !cancelled() && !failure() instead, so it runs after skipped levels but never after a failed one."""
    workflow = load("stack-build.yml")
    ran, _ = run_main(push(), depth=2, workflow=workflow)
    assert ran == ["plan", "level0", "level1", "merge", "wiki"]
    ran, _ = run_main(push(), depth=2, failing="level1", workflow=workflow)
    assert "merge" not in ran and "wiki" not in ran, "a failed build must not publish"
    ran, _ = run_main(PULL_REQUEST, depth=2, workflow=workflow)
    assert "wiki" not in ran
    assert never_true("stack-build.yml", workflow) == ([], [])


def test_a_pull_request_builds_but_does_not_publish() -> None:
    ran, _ = run_main(PULL_REQUEST, depth=5)
    assert ran == ["plan", "level0", "level1", "level2", "level3", "level4", "merge"]


def test_a_push_to_a_branch_does_not_publish() -> None:
    ran, _ = run_main(push("refs/heads/feature"), depth=5)
    assert "merge" in ran and "wiki" not in ran


def test_skip_ci_runs_nothing() -> None:
    ran, skipped = run_main(push(message="Typo (skip ci)"), depth=5)
    assert ran == [] and skipped == list(load("stack-build.yml")["jobs"])


def test_nothing_changed_runs_only_the_plan() -> None:
    ran, _ = run_main(push(), depth=0)
    assert ran == ["plan"]


def test_a_failed_plan_stops_everything() -> None:
    ran, _ = run_main(push(), depth=5, failing="plan")
    assert ran == ["plan"]


def test_a_failed_level_stops_the_merge_and_the_wiki() -> None:
    ran, _ = run_main(push(), depth=5, failing="level2")
    assert "merge" not in ran and "wiki" not in ran


# --- The tag workflow's gate ----------------------------------------------------------------------------


def run_tag(skip_gpu_test: bool, gpu: str, workflow: dict[str, Any] | None = None) -> dict[str, str]:
    workflow = workflow or load("tag.yml")
    inputs = {"tag": "2024.1-main", "dry_run": False, "skip_gpu_test": skip_gpu_test}
    contexts = {"github": {"event_name": "workflow_dispatch", "ref": "refs/heads/main", "repository": "org/stack",
                           "event": {"inputs": inputs}}, "inputs": inputs, "secrets": {}}
    return simulate(workflow, contexts, lambda name, _: (gpu if name == "gpu" else "success", {})).results


def test_tag_waits_for_the_gpu_test() -> None:
    assert run_tag(False, "success") == {"gpu": "success", "tag": "success"}
    assert run_tag(False, "failure") == {"gpu": "failure", "tag": "skipped"}


def test_tag_without_the_gpu_test_when_told_to_skip_it() -> None:
    assert run_tag(True, "success") == {"gpu": "skipped", "tag": "success"}


def test_a_gate_that_can_never_open_is_found() -> None:
    """The check above, on tag.yml changed the ways a gate goes wrong: each change is caught."""
    original = load("tag.yml")
    # Without a status function GitHub adds success(), false once gpu is skipped: the skip path is dead.
    no_status = copy.deepcopy(original)
    no_status["jobs"]["tag"]["if"] = ("${{ needs.gpu.result == 'success' || "
                                      "(inputs.skip_gpu_test && needs.gpu.result == 'skipped') }}")
    assert run_tag(True, "success", no_status)["tag"] == "skipped"
    # A condition no run satisfies: gpu is skipped only when the test is skipped.
    never = copy.deepcopy(original)
    never["jobs"]["tag"]["if"] = "${{ !cancelled() && needs.gpu.result == 'skipped' && !inputs.skip_gpu_test }}"
    assert never_true("tag.yml", never) == (["tag"], [])
    assert never_true("tag.yml", original) == ([], [])
    # A step's condition that cannot hold: dry_run is a boolean input, never the string 'yes'.
    dead_step = load("stack-tag.yml")  # tag.yml's tag job calls it
    dead_step["jobs"]["tag"]["steps"][7]["if"] = "${{ inputs.dry_run == 'yes' }}"
    assert never_true("stack-tag.yml", dead_step)[0] == ["tag.steps[7] (Publish the wiki)"]
    # A level job with no guard on an empty level runs with an empty matrix, which GitHub fails.
    unguarded = load("stack-build.yml")
    unguarded["jobs"]["level4"]["if"] = "${{ !cancelled() && needs.plan.result == 'success' }}"
    assert any("level4 runs with an empty matrix" in p for p in never_true("stack-build.yml", unguarded)[1])
