"""Which tests run together under pytest-xdist's ``--dist loadgroup``, and the scheduler that keeps them so.

Tests that share a module-scoped fixture (a stack built once, a registry of the module's own) run on one
worker, so that the fixture is made once and its tests see it as they would in one process; every other
test is spread on its own. pytest-xdist marks a group by appending it to the test's id, which pytest 9.2's
node ids no longer take, so here the workers write the groups they collected to a file the controller
names, and the controller's scheduler (pytest-xdist's load-by-scope, a test's scope being its group)
reads them from there. conftest.py imports the hooks.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_FILE = "stack_test_groups"  # the key of the file's path in each worker's workerinput
SHARED_SCOPES = {"module", "class", "package"}
_GROUPS_PATH = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The group a test runs in: its ``xdist_group`` mark's, its module if it uses a shared fixture, or None."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    if any(definition.scope in SHARED_SCOPES for defs in definitions for definition in defs):
        return item.nodeid.split("::")[0]
    return None


def groups_path(config: pytest.Config) -> Path:
    """On the controller: the file the workers write the groups to (one per run, removed at its end)."""
    if _GROUPS_PATH not in config.stash:
        folder = tempfile.mkdtemp(prefix="stack-test-groups-")
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        config.stash[_GROUPS_PATH] = Path(folder) / "groups.json"
    return config.stash[_GROUPS_PATH]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: write each grouped test's group where the controller reads it."""
    path = getattr(config, "workerinput", {}).get(GROUPS_FILE)
    if path is None:
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(handle, "w") as out:
        json.dump(groups, out)
    os.replace(temporary, path)  # every worker collects the same tests, so writes the same groups


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the controller, before a worker starts: tell it where to write the groups."""
    node.workerinput[GROUPS_FILE] = str(groups_path(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """On the controller: for ``--dist loadgroup``, schedule by group (pytest-xdist's own for any other mode)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # pytest-xdist ships no type hints
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # First called once every worker has collected, so has written the groups.
            if self.groups is None:
                self.groups = dict(json.loads(groups_path(config).read_text()))
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)
