"""Fresh bases on the real engine and registry: roots record their upstream base in OCI labels, and
--refresh-base rebuilds exactly the roots whose base moved since, with their descendants.

Bases are tiny busybox images made here with ``docker import`` (as the set-up seeds Debian with
mmdebstrap: in the engine only), or pushed to a registry.
"""
from __future__ import annotations

import io
import json
import random
import string
import tarfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest

from stack_builder.engine import baseimages
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stacks import BUSYBOX, MakeStack, Stack, applets, free_port, running_registry

pytestmark = pytest.mark.integration

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
PLATFORM = "linux/amd64"
TAG = "2024.1-main"


def seed_base(engine: docker.DockerClient, name: str, marker: str, changes: list[str] | None = None) -> str:
    """A busybox base under ``name`` whose /base-marker says ``marker``, imported (never pulled) with the
    Dockerfile ``changes``; its image ID."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        applets(tar)
        data = marker.encode()
        info = tarfile.TarInfo("base-marker")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repository, _, tag = name.rpartition(":")
    engine.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag, changes=changes)
    return str(engine.images.get(name).id)


def push(engine: docker.DockerClient, name: str) -> str:
    """Push the local ``name`` through the engine; the digest the registry stored it under."""
    repository, _, tag = name.rpartition(":")
    digest = None
    for chunk in engine.api.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
        digest = (chunk.get("aux") or {}).get("Digest") or digest
    assert digest, f"the push of {name} reported no digest"
    return str(digest)


def write_stack(stack: Stack, namespace: str, bases: dict[str, str], child_of: str | None = None) -> None:
    """One root per entry of ``bases`` (image -> the base it builds FROM), and ``child`` under ``child_of``."""
    entries = "".join(f"  {name}:\n    image_name: ghcr.io/{namespace}/{name}\n" for name in bases)
    if child_of:
        entries += f"  child:\n    image_name: ghcr.io/{namespace}/child\n    depend_on: {child_of}\n"
    stack.write("spec.yml", f"images:\n{entries}tag:\n  prefix: \"2024.1\"\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    for name, base in bases.items():
        stack.write(f"images/{name}/Dockerfile", f"FROM {base}\nRUN cat /base-marker > /{name}.txt\n")
    if child_of:
        stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo child > /child.txt\n")
    stack.write("images/tests_common/test_runs.py", """\
        def test_built_on_its_base(container):
            code, output = container.run(["sh", "-c", "cat /base-marker"])
            assert code == 0 and output.strip(), output
        """)
    stack.commit("stack")


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return str(result.stdout)


def plan(stack: Stack, *args: str) -> dict[str, Any]:
    return dict(json.loads(ok(stack.doit("plan", *args))))


def published_labels(registry: str, namespace: str, name: str) -> tuple[str, dict[str, str]]:
    """(digest, config labels) of ``name``'s image under the main tag in the registry."""
    lookups = Lookups(RegistryClient(registry))
    path = f"{namespace}/{name}"
    digest = lookups.platform_digest(path, TAG, PLATFORM)
    assert digest, f"{path}:{TAG} is not in registry {registry}"
    return digest, lookups.labels(path, digest)


def file_in(engine: docker.DockerClient, image: str, path: str) -> str:
    """The file at ``path`` in ``image``, read from a created (never started) container: nothing runs, so no log
    can be lost."""
    container = engine.containers.create(image, ["true"])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            found = tar.extractfile(member) if member is not None else None
            return found.read().decode().strip() if found is not None else ""
    finally:
        container.remove(force=True)


@pytest.fixture
def base_names(engine: docker.DockerClient) -> Iterator[list[str]]:
    """Names for the test's bases, each unique to this run; removed from the engine afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            engine.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_refresh_base_rebuilds_the_root_whose_local_base_moved_and_its_child(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, base_names: list[str]) -> None:
    run = uuid.uuid4().hex[:10]
    namespace = f"fresh{run}"
    base_a, base_b = f"stack-test/fresh-a:{run}", f"stack-test/fresh-b:{run}"
    base_names += [base_a, base_b]
    first_a = seed_base(engine, base_a, "a-first")
    first_b = seed_base(engine, base_b, "b-first")
    stack = make_stack(registry=registry)
    write_stack(stack, namespace, {"a": base_a, "b": base_b}, child_of="a")

    ok(stack.doit("build"))
    assert {n: r["status"] for n, r in stack.report()["images"].items()} == {"a": "built", "b": "built",
                                                                            "child": "built"}
    # Each root names its base and the base's local image ID (it is in no registry).
    digest_a, labels_a = published_labels(registry, namespace, "a")
    assert (labels_a[BASE_NAME], labels_a[BASE_DIGEST]) == (base_a, first_a)
    _, labels_b = published_labels(registry, namespace, "b")
    assert (labels_b[BASE_NAME], labels_b[BASE_DIGEST]) == (base_b, first_b)
    # A child names its parent by digest.
    _, labels_child = published_labels(registry, namespace, "child")
    assert labels_child[BASE_NAME] == f"{registry}/{namespace}/a@{digest_a}"
    assert labels_child[BASE_DIGEST] == digest_a

    assert plan(stack, "--refresh-base")["images"] == []  # no base moved: nothing to build

    second_a = seed_base(engine, base_a, "a-second")  # the same tag, other content: another image
    assert second_a != first_a
    assert plan(stack)["images"] == []  # nothing changed in git, nothing missing: only the base
    refreshed = plan(stack, "--refresh-base")
    assert refreshed["images"] == ["a", "child"]
    assert refreshed["reasons"] == {"a": "base image updated", "child": "descendant of a (base image updated)"}
    tree = ok(stack.doit("tree", "--refresh-base"))
    assert "[build: base image updated]" in tree and "2 of 3 images would be built" in tree

    ok(stack.doit("build", "--refresh-base"))
    report = stack.report()["images"]
    assert {n: (r["status"], r["reason"]) for n, r in report.items()} == {
        "a": ("built", "base image updated"), "child": ("built", "descendant of a (base image updated)"),
        "b": ("unchanged", report["b"]["reason"])}
    new_digest_a, labels_a = published_labels(registry, namespace, "a")
    assert new_digest_a != digest_a
    assert (labels_a[BASE_NAME], labels_a[BASE_DIGEST]) == (base_a, second_a)
    assert published_labels(registry, namespace, "child")[1][BASE_DIGEST] == new_digest_a
    assert file_in(engine, f"{registry}/{namespace}/a:{TAG}", "/a.txt") == "a-second"  # built on the new base
    assert plan(stack, "--refresh-base")["images"] == []  # settled


def test_refresh_base_needs_the_registry(make_stack: MakeStack, registry: str, engine: docker.DockerClient,
                                         base_names: list[str]) -> None:
    run = uuid.uuid4().hex[:10]
    base = f"stack-test/fresh-down:{run}"
    base_names.append(base)
    seed_base(engine, base, "down")
    stack = make_stack(registry=registry)
    write_stack(stack, f"down{run}", {"a": base})
    down = f"127.0.0.1:{free_port()}"
    for task in ("plan", "tree", "build"):
        result = stack.doit(task, "--refresh-base", "--registry", down, env={"STACK_REGISTRY_TIMEOUT": "1"})
        output = result.stdout + result.stderr
        assert result.returncode != 0, (task, output)
        assert f"registry {down}" in output and "Traceback" not in output, (task, output)
        if task != "build":  # (a build that would push stops before: the registry is needed to publish)
            assert "--refresh-base compares each root's base" in output, (task, output)
    result = stack.doit("plan", "--refresh-base", "--image", "a")
    assert result.returncode != 0 and "use one or the other" in result.stdout + result.stderr


@pytest.mark.parametrize("where", ["target", "other"])
def test_a_base_pulled_from_a_registry_is_recorded_by_digest_and_pulled_again_when_it_moved(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, base_names: list[str], registry_binary: str,
        tmp_path: Path, where: str) -> None:
    """A base in a registry: in the stack's own registry (asked directly), or another one (asked through the
    engine, as Docker Hub is). The engine holds a pulled copy; when the tag moves in the registry, the copy is
    stale: --refresh-base selects the root, pulls the base again and builds on it."""
    run = uuid.uuid4().hex[:10]
    with running_registry(registry_binary, tmp_path / "upstream") as upstream:
        host = registry if where == "target" else upstream
        base = f"{host}/stack-test/fresh-pulled:{run}"
        base_names.append(base)
        first_id = seed_base(engine, base, "pulled-first")
        first = push(engine, base)
        namespace = f"pulled{run}"
        stack = make_stack(registry=registry)
        write_stack(stack, namespace, {"a": base})
        ok(stack.doit("build"))
        _, labels = published_labels(registry, namespace, "a")
        assert (labels[BASE_NAME], labels[BASE_DIGEST]) == (base, first)  # the registry's digest, not the image ID
        assert plan(stack, "--refresh-base")["images"] == []

        # The tag moves in the registry; the engine's copy under the name stays the old one.
        second_id = seed_base(engine, base, "pulled-second")
        second = push(engine, base)
        engine.api.tag(first_id, base.rpartition(":")[0], run, force=True)
        assert second != first and engine.images.get(base).id == first_id != second_id
        assert plan(stack, "--refresh-base")["reasons"] == {"a": "base image updated"}

        ok(stack.doit("build", "--refresh-base"))
        assert stack.report()["images"]["a"]["status"] == "built"
        _, labels = published_labels(registry, namespace, "a")
        assert (labels[BASE_NAME], labels[BASE_DIGEST]) == (base, second)
        assert engine.images.get(base).id == second_id  # pulled again
        assert file_in(engine, f"{registry}/{namespace}/a:{TAG}", "/a.txt") == "pulled-second"
        assert plan(stack, "--refresh-base")["images"] == []


def test_a_base_seeded_with_the_host_ca_gets_a_local_name_and_roots_build_on_it(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, base_names: list[str]) -> None:
    """An earlier set-up's seed that trusts the host's CA, under the official name, is renamed
    localhost/host-ca/<name>; roots that say FROM <name> (directly, or as ARG BASE_IMAGE's default) build on it
    and record it by its local name, and the official name never comes back."""
    run = uuid.uuid4().hex[:10]
    official = "debian:" + "".join(random.choices(string.ascii_lowercase, k=12))  # a suite the set-up seeds
    local = f"localhost/host-ca/{official}"
    base_names += [official, local]
    seed_id = seed_base(engine, official, "host-ca-seed", changes=[
        "LABEL org.opencontainers.image.description=seeded-with-mmdebstrap",
        "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"])
    namespace = f"local{run}"
    stack = make_stack(registry=registry)
    stack.write("spec.yml", f"images:\n  a:\n    image_name: ghcr.io/{namespace}/a\n"
                            f"  b:\n    image_name: ghcr.io/{namespace}/b\ntag:\n  prefix: \"2024.1\"\n")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/a/Dockerfile", f"FROM {official}\nRUN cat /base-marker > /a.txt\n")
    stack.write("images/b/Dockerfile", f"ARG BASE_IMAGE={official}\nFROM ${{BASE_IMAGE}}\nRUN cat /base-marker > /b.txt\n")
    stack.commit("stack")

    assert baseimages.ensure(stack.root) == []  # present already: renamed, nothing seeded or pulled
    assert engine.images.get(local).id == seed_id
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(official)

    ok(stack.doit("build"))
    for name in ("a", "b"):
        _, labels = published_labels(registry, namespace, name)
        assert (labels[BASE_NAME], labels[BASE_DIGEST]) == (local, seed_id), name
    assert file_in(engine, f"{registry}/{namespace}/a:{TAG}", "/a.txt") == "host-ca-seed"
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(official)  # nothing pulled or tagged the official name
    assert plan(stack, "--refresh-base")["images"] == []  # the stand-in did not move
