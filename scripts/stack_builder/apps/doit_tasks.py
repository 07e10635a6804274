"""The doit tasks. Each action imports its app only when the task runs, so listing tasks stays fast.

A repository's ``dodo.py`` imports these names; the ``stack-builder`` command loads them directly,
so it also works in a stack that has a ``dodo.py`` of its own.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from doit.reporter import ConsoleReporter

from stack_builder.apps import params

class StderrReporter(ConsoleReporter):  # type: ignore[misc]  # doit has no type hints
    """doit's own lines (".  build", failures) go to stderr: stdout carries only what a task prints
    (the plan's JSON, a summary table), so `stack-builder plan | jq` works."""

    def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
        super().__init__(sys.stderr, options)


DOIT_CONFIG = {
    "default_tasks": ["build"],
    "verbosity": 2,
    "backend": "json",
    "dep_file": ".doit.json",
    "reporter": StderrReporter,
}


def _action(app: str) -> Callable[..., Any]:
    """A doit action that runs ``stack_builder.apps.<app>.main`` with the task's parameters (its ``Failed`` as doit's
    own failure)."""
    def action(**options: Any) -> Any:
        from doit.exceptions import TaskFailed

        from stack_builder.apps.runtime import Failed

        result = importlib.import_module(f"stack_builder.apps.{app}").main(**options)
        return TaskFailed(result.message) if isinstance(result, Failed) else result

    action.__name__ = app
    return action


def _task(app: str, options: list[dict[str, Any]], doc: str) -> dict[str, Any]:
    return {"actions": [(_action(app),)], "params": options, "uptodate": [False], "verbosity": 2, "doc": doc}


def task_build() -> dict[str, Any]:
    """Build, test, then push the changed and missing images and their descendants, parents first. Example: build --image base-notebook"""
    return _task("build", params.BUILD, task_build.__doc__ or "")


def task_init() -> dict[str, Any]:
    """Start a new stack here: spec.yml, a root image with a test, workflows calling stack-builder's, .gitignore, README. Example: init --name base-notebook --model"""
    return _task("init", params.INIT, task_init.__doc__ or "")


def task_tree() -> dict[str, Any]:
    """Print the stack as a tree, marking what would be built and why. Example: tree --base-ref HEAD~3"""
    return _task("show_tree", params.TREE, task_tree.__doc__ or "")


def task_plan() -> dict[str, Any]:
    """Print the build plan as JSON (only JSON on stdout): images, reasons, parents, levels. Example: plan | jq .images"""
    return _task("show_plan", params.PLAN, task_plan.__doc__ or "")


def task_merge() -> dict[str, Any]:
    """Assemble multi-platform indexes registry-side from this commit's platform images. Example: merge --image base-notebook"""
    return _task("merge", params.MERGE, task_merge.__doc__ or "")


def task_manifest() -> dict[str, Any]:
    """Write the manifest record and wiki page of an image in the registry. Example: manifest --image base-notebook --tag 2026.4-main"""
    return _task("manifest", params.MANIFEST, task_manifest.__doc__ or "")


def task_precalc() -> dict[str, Any]:
    """Precalculate a model image's predictions over a reference library into the prediction store (--store: DuckDB, by default artifacts/precalc.duckdb, or PostgreSQL). Example: precalc --image iris-model --library library.csv --workers 2"""
    return _task("precalc", params.PRECALC, task_precalc.__doc__ or "")


def task_serve() -> dict[str, Any]:
    """Serve the stored predictions over HTTP, read-only: GET /models, POST /models/IMAGE/predict, /docs. Example: serve --store postgresql://reader:PW@db:5432/hub --port 8000"""
    return _task("serve", params.SERVE, task_serve.__doc__ or "")


def task_sbom() -> dict[str, Any]:
    """Write the CycloneDX SBOM of a pushed image to a file. Example: sbom --image base-notebook --tag 2026.4-main --platform linux/amd64"""
    return _task("sbom", params.SBOM, task_sbom.__doc__ or "")


def task_yank() -> dict[str, Any]:
    """Revoke a published digest: record why, remove the tags on it; promotion and reuse refuse it. Example: yank --image base-notebook --digest sha256:... --reason "CVE-2026-1234" --dry-run"""
    return _task("yank", params.YANK, task_yank.__doc__ or "")


def task_gc() -> dict[str, Any]:
    """Delete from the registry what no kept tag reaches (retention), after a plan; then check every kept tag. Example: gc --dry-run"""
    return _task("gc", params.GC, task_gc.__doc__ or "")


def task_wiki() -> dict[str, Any]:
    """Re-render the wiki's Home and Stable_Tag pages, fold old pages, check every link. Example: wiki"""
    return _task("wiki", [], task_wiki.__doc__ or "")


def task_tag() -> dict[str, Any]:
    """Promote a build registry-side through the GPU and model gates. Example: tag --tag 2026.4-main --dry-run"""
    return _task("tag", params.TAG, task_tag.__doc__ or "")


def task_test_gpu() -> dict[str, Any]:
    """Run the GPU tests of gpu: true images on DOCKER_HOST, recorded per digest. Example: test_gpu --tag 2026.4-main"""
    return _task("gpu", params.GPU, task_test_gpu.__doc__ or "")
