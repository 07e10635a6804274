"""The doit tasks. Each action imports its app only when the task runs, so listing tasks stays fast.

A repository's ``dodo.py`` imports these names; the ``stack-builder`` command loads them directly,
so it also works in a stack that has a ``dodo.py`` of its own.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from stack_builder.apps import params

DOIT_CONFIG = {
    "default_tasks": ["build"],
    "verbosity": 2,
    "backend": "json",
    "dep_file": ".doit.json",
}


def _action(app: str) -> Callable[..., Any]:
    """A doit action that runs ``stack_builder.apps.<app>.main`` with the task's parameters."""
    def action(**options: Any) -> Any:
        return importlib.import_module(f"stack_builder.apps.{app}").main(**options)

    action.__name__ = app
    return action


def _task(app: str, options: list[dict[str, Any]], doc: str) -> dict[str, Any]:
    return {"actions": [(_action(app),)], "params": options, "uptodate": [False], "verbosity": 2, "doc": doc}


def task_build() -> dict[str, Any]:
    """Build, test, then push the changed images and their descendants, parents first."""
    return _task("build", params.BUILD, task_build.__doc__ or "")


def task_tree() -> dict[str, Any]:
    """Print the stack as a tree, marking what would be built and why."""
    return _task("show_tree", params.TREE, task_tree.__doc__ or "")


def task_plan() -> dict[str, Any]:
    """Print the build plan as JSON for CI: images, reasons, parents, and levels of {image, platform, runner}."""
    return _task("show_plan", params.PLAN, task_plan.__doc__ or "")


def task_merge() -> dict[str, Any]:
    """Assemble the multi-platform indexes registry-side once every platform of a level is pushed."""
    return _task("merge", params.MERGE, task_merge.__doc__ or "")


def task_manifest() -> dict[str, Any]:
    """Write the manifest record and wiki page of an image already in the registry."""
    return _task("manifest", params.MANIFEST, task_manifest.__doc__ or "")


def task_wiki() -> dict[str, Any]:
    """Re-render the wiki's Home and Stable_Tag pages, fold old pages over the cap, check every link."""
    return _task("wiki", [], task_wiki.__doc__ or "")


def task_tag() -> dict[str, Any]:
    """Promote a build registry-side (to YYYY.Q-stable, or the global stable) through the GPU and model gates."""
    return _task("tag", params.TAG, task_tag.__doc__ or "")


def task_test_gpu() -> dict[str, Any]:
    """Run the GPU tests of the gpu: true images on the engine at DOCKER_HOST and record them per digest."""
    return _task("gpu", params.GPU, task_test_gpu.__doc__ or "")
