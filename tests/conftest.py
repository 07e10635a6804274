"""Shared fixtures: the real Docker engine, a real registry of the tests' own, a real PostgreSQL server,
and temporary stacks.

Nothing here mocks Docker, the registry or git.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import docker
import pytest

from pgserver import admin_url, fresh_database, running_postgres
from stacks import DODO, REPO, MakeStack, Stack, ensure_test_base, registry_digest, running_registry, small_stack  # noqa: F401
from xdist_groups import (  # noqa: F401  (pytest-xdist's hooks: tests that share a fixture run together)
    pytest_collection_modifyitems, pytest_configure_node, pytest_xdist_make_scheduler)

# Stacks kept as test inputs hold image tests of their own: they run in those stacks' containers, never here.
collect_ignore_glob = ["fixtures/*"]


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The admin URL (a superuser, with its password) of a real PostgreSQL server: the one `setup.sh`
    started, or one of the tests' own; make a database per test with ``postgres_db``."""
    if admin_url():
        yield admin_url()
        return
    try:
        server = running_postgres()
        url = server.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def postgres_db(postgres: str) -> Iterator[str]:
    """The URL of a new, empty database of its own (the admin's credentials), dropped after the test."""
    with fresh_database(postgres) as url:
        yield url
