"""Shared fixtures: the real Docker engine, a real registry of the tests' own, and temporary stacks.

Nothing here mocks Docker, the registry or git.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import docker
import pytest

from stacks import DODO, REPO, MakeStack, Stack, ensure_test_base, registry_digest, running_registry, small_stack  # noqa: F401


SHARED_SCOPES = {"module", "class", "package"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist's ``--dist loadgroup``, tests that share a module-scoped fixture (a stack built once,
    a registry of the module's own) run on one worker, so that fixture is made once; other tests spread
    one by one. Session fixtures (the registry, the test base) are each worker's own."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        definitions = info.name2fixturedefs.values() if info is not None else ()
        if any(d.scope in SHARED_SCOPES for defs in definitions for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # the suite needs a real engine: say so plainly
        pytest.fail(f"no Docker engine answers ({exc}); run `bash setup.sh env` first", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_binary() -> str:
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        pytest.fail("docker-registry is not installed; run `bash setup.sh env` first", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def registry(registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(registry_binary, tmp_path_factory.mktemp("registry")) as host:
        yield host


@pytest.fixture(scope="module")
def empty_registry(registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry of the module's own, empty when its first test starts."""
    with running_registry(registry_binary, tmp_path_factory.mktemp("empty-registry")) as host:
        yield host


@pytest.fixture(scope="session")
def test_base(engine: docker.DockerClient) -> str:
    try:
        return ensure_test_base(engine)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def make_stack(tmp_path: Path) -> MakeStack:
    def factory(name: str = "stack", registry: str | None = None) -> Stack:
        return Stack(tmp_path / name, registry)

    return factory
