"""Commands that do little start fast: what listing the tasks, `--version` and `tag` load before they need it.

Each check runs a fresh interpreter and reads what it imported; the timings themselves are
benchmarks/bench_startup.py's and bench_promote.py's (no timing is asserted here).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from stack_builder.defaults import FD_VAR, SECRET_VARS

from stacks import REPO, STACK_BUILDER

# Libraries that only some task bodies need, and that cost start-up time whenever they load.
HEAVY = ("anytree", "cyclonedx", "docker", "duckdb", "git", "jsonschema", "requests", "rich", "tabulate",
         "urllib3", "yaml")
# Layers of ours that only a task body needs: listing the tasks or starting the command loads none of them.
# (The task table, its parameters, and the configuration and settings they name are light and may load; the
# credentials hand-over loads only when the environment holds a secret to hand over.)
TASK_BODY_LAYERS = ("checks", "engine", "pipeline", "plan", "precalc", "records", "release", "spec")
TASK_BODY_MODULES = ("stack_builder.registry.client", "stack_builder.registry.credentials", "stack_builder.registry.signing", "stack_builder.apps.runtime",
                     "stack_builder.apps.tag", "stack_builder.apps.build", "stack_builder.apps.live")
# A promotion moves tags registry-side: it never builds, runs containers, renders live output or writes SBOMs.
NOT_FOR_TAG = ("anytree", "cyclonedx", "docker", "duckdb", "git", "rich")
NOT_FOR_TAG_LAYERS = ("checks", "engine", "pipeline", "plan", "precalc")


def loaded(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {name: value for name, value in os.environ.items() if name not in (*SECRET_VARS, FD_VAR)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
                            env=env)
    return set(json.loads(result.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules} & set(HEAVY))


def ours(modules: set[str]) -> set[str]:
    return {name for name in modules if name == "stack_builder" or name.startswith("stack_builder.")}


def task_body(modules: set[str]) -> list[str]:
    """The modules of ours among ``modules`` that only a running task needs."""
    return sorted(name for name in ours(modules)
                  if name.split(".")[1:2] and name.split(".")[1] in TASK_BODY_LAYERS or name in TASK_BODY_MODULES)


def test_the_probe_sees_what_an_import_loads() -> None:
    # The checks below must be able to fail: a heavy import is seen, and so is one of ours.
    modules = loaded("import tabulate, stack_builder.records.files")
    assert heavy(modules) == ["tabulate"]
    assert task_body(modules) == ["stack_builder.records", "stack_builder.records.files",
                                  "stack_builder.registry.credentials"]


@pytest.mark.parametrize("entry", ["import stack_builder.apps.doit_tasks",
                                   f"import runpy; runpy.run_path({str(REPO / 'dodo.py')!r})"])
def test_listing_tasks_loads_only_the_task_table(entry: str) -> None:
    modules = loaded(entry)
    assert heavy(modules) == [], f"imported to list the tasks: {heavy(modules)}"
    assert task_body(modules) == [], f"imported to list the tasks: {task_body(modules)}"


def test_the_command_loads_no_task_body_before_a_task_runs() -> None:
    modules = loaded("import stack_builder.apps.cli")
    assert heavy(modules) == [], f"imported before any task runs: {heavy(modules)}"
    assert task_body(modules) == [], f"imported before any task runs: {task_body(modules)}"


def test_version_imports_nothing_heavy() -> None:
    # -X importtime names every module the whole command imported, on stderr.
    result = subprocess.run([sys.executable, "-X", "importtime", str(STACK_BUILDER), "--version"],
                            capture_output=True, text=True, check=True)
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "stack_builder.version" in modules  # the probe read the command's imports
    assert heavy(modules) == [], f"imported by --version: {heavy(modules)}"


def test_the_tag_command_loads_nothing_a_promotion_never_uses() -> None:
    modules = loaded("import stack_builder.apps.tag")
    found = sorted({name.split(".")[0] for name in modules} & set(NOT_FOR_TAG))
    assert found == [], f"imported by the tag command, which never uses them: {found}"
    layers = sorted(name for name in ours(modules) if name.split(".")[1:2] and name.split(".")[1] in NOT_FOR_TAG_LAYERS)
    assert layers == [], f"imported by the tag command, which never uses them: {layers}"
