"""The house's seams, checked on the package's own syntax trees and in fresh interpreters.

- Only ``engine/`` imports docker; only ``registry/`` imports requests.
- Listing tasks imports nothing heavy (docker, git, jsonschema, requests, yaml, anytree, tabulate).
- One UTC/JSON-writing helper; one retry loop; one container lifecycle.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import REPO

PACKAGE = REPO / "scripts" / "stack_builder"
HEAVY = ("docker", "git", "jsonschema", "requests", "yaml", "anytree", "tabulate", "urllib3")


def modules() -> dict[Path, ast.Module]:
    return {path.relative_to(PACKAGE): ast.parse(path.read_text(), str(path)) for path in PACKAGE.rglob("*.py")}


def imported(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def importers(library: str) -> set[str]:
    return {str(path) for path, tree in modules().items() if library in imported(tree)}


def test_the_seams_checker_sees_imports() -> None:
    # The checker itself must be able to fail: it finds imports written either way.
    assert imported(ast.parse("import docker.errors\nfrom requests import Session\n")) == {"docker", "requests"}


def test_only_the_engine_imports_docker() -> None:
    found = importers("docker")
    assert found and all(path.startswith("engine/") for path in found), found


def test_only_the_registry_imports_requests() -> None:
    found = importers("requests")
    assert found and all(path.startswith("registry/") for path in found), found


@pytest.mark.parametrize("entry", ["import stack_builder.apps.doit_tasks, stack_builder.apps.cli",
                                   f"import runpy; runpy.run_path({str(REPO / 'dodo.py')!r})"])
def test_listing_tasks_imports_nothing_heavy(entry: str) -> None:
    code = f"{entry}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"imported at start-up: {result.stdout.strip()}"


def own_imports(tree: ast.Module) -> set[str]:
    """The builder's own packages and modules a module imports: ``engine`` for ``stack_builder.engine.images``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [f"{node.module}.{alias.name}" for alias in node.names] \
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        found.update(name.split(".")[1] for name in names if name.startswith("stack_builder."))
    return found


def test_the_seams_checker_sees_own_imports() -> None:
    tree = ast.parse("import stack_builder.engine.images\nfrom stack_builder import signals\n"
                     "from stack_builder.checks.inventory import collect\n")
    assert own_imports(tree) == {"engine", "signals", "checks"}


def test_records_only_write_records() -> None:
    # Records take plain data and write files: the container that gathers a manifest runs in checks/.
    for path, tree in modules().items():
        if path.parts[0] == "records":
            assert not own_imports(tree) & {"engine", "checks"} and "docker" not in imported(tree), path


PUBLISHED_MAY_IMPORT = {"published", "config", "engine", "checks", "records", "registry", "plan", "spec", "errors",
                        "retry", "signals", "kinds"}


def test_published_images_sit_below_the_commands_only() -> None:
    # `manifest` and `sbom` read what is already in the registry: nothing of the build pipeline, and only the
    # commands (apps/) call them.
    trees = modules()
    assert any(path.parts[0] == "published" for path in trees)
    for path, tree in trees.items():
        if path.parts[0] == "published":
            assert own_imports(tree) <= PUBLISHED_MAY_IMPORT, (path, own_imports(tree) - PUBLISHED_MAY_IMPORT)
        elif "published" in own_imports(tree):
            assert path.parts[0] == "apps", path


def calls_to(tree: ast.Module, name: str) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            count += called == name
    return count


def definers(name: str) -> set[str]:
    return {str(path) for path, tree in modules().items()
            if any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))}


def test_one_helper_writes_json_and_timestamps() -> None:
    assert definers("utc_now") == definers("write_json") == {"records/files.py"}
    for call in ("now", "utcnow", "time", "dump", "mkstemp"):  # timestamps, json.dump to a file, temp files
        users = {str(p) for p, tree in modules().items() if calls_to(tree, call)}
        assert users <= {"records/files.py"}, (call, users)
    assert {str(p) for p in modules() if "os.replace(" in (PACKAGE / p).read_text()} == {"records/files.py"}


def test_only_the_engine_touches_the_sdk_low_level_client() -> None:
    users = {str(p) for p, tree in modules().items()
             if any(isinstance(n, ast.Attribute) and n.attr == "api" for n in ast.walk(tree))}
    assert users and all(path.startswith("engine/") for path in users), users


def test_one_retry_loop() -> None:
    sleepers = {str(p) for p, tree in modules().items() if calls_to(tree, "sleep")}
    # The retry policy sleeps between attempts; the stack lock polls while another build holds it.
    assert sleepers == {"retry.py", "pipeline/lock.py"}, sleepers


def test_one_container_lifecycle() -> None:
    creators = {str(p) for p, tree in modules().items() if calls_to(tree, "create") or
                any(isinstance(n, ast.Attribute) and n.attr == "containers" for n in ast.walk(tree))}
    assert creators == {"engine/containers.py"}, creators
