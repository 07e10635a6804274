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
                        "retry", "signals", "kinds", "version"}


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
    # The retry policy sleeps between attempts; the stack lock polls while another build holds it; the registry's
    # deadline watchdog waits for the next deadline.
    assert sleepers == {"retry.py", "pipeline/lock.py", "registry/deadline.py"}, sleepers


def test_one_container_lifecycle() -> None:
    creators = {str(p) for p, tree in modules().items() if calls_to(tree, "create") or
                any(isinstance(n, ast.Attribute) and n.attr == "containers" for n in ast.walk(tree))}
    assert creators == {"engine/containers.py"}, creators


# -- configuration in one place ------------------------------------------------------------------------------

# The modules that may read the process environment, and why each must.
READS_ENVIRONMENT = {
    "settings.py": "the one reader: settings are read from it once per task, into frozen values",
    # The hand-over re-executes the command with its environment passed through unchanged (less the secrets),
    # so it needs the environment itself, before any settings exist.
    "apps/cli.py": "hands the credentials over to a copy of itself (stack-builder, or doit -f dodo.py); reads "
                   "the hand-over file's number back",
}


def environ_uses(tree: ast.Module) -> list[ast.AST]:
    """Every use of os.environ, os.environb, os.getenv, os.putenv or os.unsetenv (and of a name imported from os)."""
    names = {"environ", "environb", "getenv", "putenv", "unsetenv", "getenvb"}
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name) \
                and node.value.id == "os":
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in names for a in node.names):
            found.append(node)
    return found


def environ_writes(tree: ast.Module) -> list[ast.AST]:
    """Every change of the process environment: item assignment or deletion, a changing method, putenv/unsetenv."""
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
            and node.value.id == "os"

    changing = {"pop", "popitem", "setdefault", "update", "clear", "__setitem__", "__delitem__"}
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (node.func.attr in changing and is_environ(node.func.value))
                or (node.func.attr in ("putenv", "unsetenv") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "os")):
            found.append(node)
        elif isinstance(node, (ast.Assign, ast.AugAssign)) and any(
                is_environ(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            found.append(node)
    return found


def test_the_environment_checkers_see_reads_and_writes() -> None:
    code = ast.parse("import os\nos.environ['A'] = '1'\nos.environ.pop('B')\nos.environ.setdefault('C', '')\n"
                     "del os.environ['D']\nos.putenv('E', '')\nx = os.getenv('F')\nfrom os import environ\n")
    assert len(environ_writes(code)) == 5
    assert len(environ_uses(code)) == 7  # four through os.environ, putenv, getenv, and the import
    assert environ_writes(ast.parse("import os\nvalue = os.environ.get('A')\nenv = dict(os.environ)\n")) == []


def test_nothing_changes_the_environment_at_run_time() -> None:
    writers = {str(p): [getattr(n, "lineno", 0) for n in environ_writes(tree)] for p, tree in modules().items()}
    assert {p: lines for p, lines in writers.items() if lines} == {}


def test_only_the_settings_read_the_environment() -> None:
    readers = {str(p) for p, tree in modules().items() if environ_uses(tree)}
    assert readers <= set(READS_ENVIRONMENT), sorted(readers - set(READS_ENVIRONMENT))
    assert "settings.py" in readers


def registry_imports(tree: ast.Module | ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(
                "stack_builder.registry"):
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and node.module == "stack_builder" and any(
                a.name == "registry" for a in node.names):
            found.append(node)
        elif isinstance(node, ast.Import) and any(a.name.startswith("stack_builder.registry") for a in node.names):
            found.append(node)
    return found


def test_the_engine_never_imports_the_registry() -> None:
    importers = {str(p) for p, tree in modules().items() if str(p).startswith("engine/") and registry_imports(tree)}
    assert importers == set()


def test_config_imports_the_registry_only_to_build_its_client() -> None:
    tree = modules()[Path("config.py")]
    allowed: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "registry_client":  # when a task asks for a client
            allowed.update(registry_imports(node))
        elif isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            allowed.update(registry_imports(node))  # for the type checker only: never imported at run time
    assert allowed, "the checker must see config.registry_client's import"
    assert [getattr(n, "lineno", 0) for n in registry_imports(tree) if n not in allowed] == []


def test_the_secrets_and_settings_modules_sit_at_the_bottom() -> None:
    # Importable by engine/ and registry/ alike: they import nothing of the package but each other (and the
    # import-free defaults the command line shows, and the errors a bad setting raises).
    for name in ("secrets.py", "settings.py", "defaults.py"):
        inside = {f"{n.module}.{a.name}" if n.module == "stack_builder" else str(n.module)
                  for n in ast.walk(modules()[Path(name)]) if isinstance(n, ast.ImportFrom)
                  and (n.module or "").startswith("stack_builder") for a in n.names}
        assert inside <= {"stack_builder.secrets", "stack_builder.defaults", "stack_builder.errors"}, (name, inside)


# -- rooms that keep their promise ---------------------------------------------------------------------------

MAX_CLASS_LINES = 150


def long_classes(prefixes: tuple[str, ...]) -> dict[str, int]:
    return {f"{p}:{node.name}": node.end_lineno - node.lineno + 1 for p, tree in modules().items()
            if str(p).startswith(prefixes) for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES}


def test_no_class_of_the_registry_or_the_engine_is_over_150_lines() -> None:
    assert long_classes(("registry/", "engine/", "config.py", "settings.py", "secrets.py")) == {}


MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400


def test_no_class_over_150_lines_no_function_over_60_no_file_over_400() -> None:
    functions = {f"{p}:{node.name}": node.end_lineno - node.lineno + 1 for p, tree in modules().items()
                 for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    files = {str(p): n for p in PACKAGE.rglob("*.py")
             if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert (long_classes(("",)), functions, files) == ({}, {}, {})

