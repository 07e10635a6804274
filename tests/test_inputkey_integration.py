"""The input key covers what BuildKit and pytest really read (real engine, registry, git and pytest).

Each test is one of the misses found in the old key, written as the attack: a change the old key did not
see, after which a re-run must build (and test) again, never reuse what was published before.
"""
from __future__ import annotations

import io
import subprocess

import docker
import pytest

from stacks import MakeStack, Stack, registry_digest, small_stack

pytestmark = pytest.mark.integration


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return str(output)


def statuses(stack: Stack) -> dict[str, str]:
    return {name: str(r["status"]) for name, r in stack.report()["images"].items()}


def test_a_case_mismatched_dockerignore_a_linked_test_and_a_conftest_above_are_all_inputs(
        make_stack: MakeStack, empty_registry: str, test_base: str, engine: docker.DockerClient) -> None:
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="exact")
    # BuildKit matches .dockerignore case-sensitively: *.TXT does not leave config.txt out.
    stack.write("images/left/.dockerignore", "*.TXT\n")
    stack.write("images/left/config.txt", "setting = 1\n")
    stack.write("images/left/Dockerfile",
                "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo left > /left.txt\nCOPY config.txt /config.txt\n")
    # right's test is a link to a shared file: pytest reads through it.
    stack.write("images/shared/check_right.py", "def test_right_linked(container):\n    assert True\n")
    (stack.root / "images/right/test/test_linked.py").symlink_to(stack.root / "images/shared/check_right.py")
    # A conftest above the stack (in the folder that holds it): pytest must never load it.
    marker = stack.root.parent / "outside-conftest-ran"
    (stack.root.parent / "conftest.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('loaded')\n")
    stack.commit("initial")
    ok(stack.doit("build", "--all"))
    assert set(statuses(stack).values()) == {"built"}
    assert not marker.exists(), "a conftest.py outside the stack ran with the image tests"

    ok(stack.doit("build", "--all"))
    assert set(statuses(stack).values()) == {"reused"}

    # 1. The file BuildKit sends changed: left is built again and its tag serves the new file.
    stack.write("images/left/config.txt", "setting = 2\n")
    # 2. The linked test's target changed (same link text): right is tested again, and now fails.
    stack.write("images/shared/check_right.py", "def test_right_linked(container):\n    assert False\n")
    stack.commit("change what BuildKit and pytest read")
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    assert statuses(stack) == {"root": "reused", "left": "built", "leaf": "built", "right": "failed"}
    left = stack.report()["images"]["left"]
    served = engine.containers.run(f"{empty_registry}/exact/left@{left['digest']}", ["cat", "/config.txt"],
                                   remove=True)
    assert served.decode().strip() == "setting = 2"

    # 3. Only a file's mode changed (BuildKit copies it): left is built again, and its file has the new mode.
    stack.write("images/shared/check_right.py", "def test_right_linked(container):\n    assert True\n")
    stack.commit("right passes again")
    ok(stack.doit("build", "--all"))
    assert statuses(stack)["right"] == "reused"  # the inputs of the first build, which passed its tests
    (stack.root / "images/left/config.txt").chmod(0o600)
    stack.commit("config.txt: private")
    ok(stack.doit("build", "--all"))
    assert statuses(stack)["left"] == "built"
    left = stack.report()["images"]["left"]
    listed = engine.containers.run(f"{empty_registry}/exact/left@{left['digest']}", ["ls", "-l", "/config.txt"],
                                   remove=True)
    assert listed.decode().startswith("-rw-------"), listed

    # 4. A conftest.py in the stack above the test folders: pytest loads it, so it is an input too.
    stack.write("images/conftest.py", "import pytest\n")
    stack.commit("a conftest for every image")
    ok(stack.doit("build", "--all"))
    assert set(statuses(stack).values()) == {"built"}
    assert not marker.exists()


def test_a_link_out_of_the_stack_fails_the_image_clearly(make_stack: MakeStack, empty_registry: str,
                                                         test_base: str) -> None:
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="escape")
    outside = stack.root.parent / "outside-secret.txt"
    outside.write_text("not reviewed with the stack\n")
    (stack.root / "images/right/leak.txt").symlink_to(outside)
    stack.commit("initial")
    result = stack.doit("build", "--all", "--no-push")
    assert result.returncode != 0
    right = stack.report()["images"]["right"]
    assert right["status"] == "failed" and "outside the stack" in right["reason"], right["reason"]
    assert statuses(stack)["left"] == "built"  # the other branch is not held up


def test_a_stage_from_a_registry_image_by_tag_is_pinned_and_a_moved_tag_builds_anew(
        make_stack: MakeStack, empty_registry: str, test_base: str, engine: docker.DockerClient) -> None:
    def push_tool(content: str) -> str:
        image, _ = engine.images.build(fileobj=io.BytesIO(f"FROM {test_base}\nRUN echo {content} > /tool.txt\n".encode()),
                                       rm=True)
        image.tag(f"{empty_registry}/tools/tool", "1")
        for line in engine.images.push(f"{empty_registry}/tools/tool", "1", stream=True, decode=True):
            assert "error" not in line, line
        engine.images.remove(f"{empty_registry}/tools/tool:1")  # the tag moves in the registry, not in the engine
        return str(registry_digest(empty_registry, "tools/tool", "1"))

    first = push_tool("first")
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="pinned")
    stack.write("images/right/Dockerfile", f"ARG BASE_IMAGE\nFROM {empty_registry}/tools/tool:1 AS tool\n"
                                           "FROM ${BASE_IMAGE}\nRUN echo right > /right.txt\n"
                                           "COPY --from=tool /tool.txt /tool.txt\n")
    stack.commit("right copies a tool from a registry image, by tag")
    ok(stack.doit("build", "--all"))
    right = stack.report()["images"]["right"]
    assert right["status"] == "built"

    second = push_tool("second")  # the tag moves upstream
    assert second != first
    ok(stack.doit("build", "--all"))
    right = stack.report()["images"]["right"]
    assert right["status"] == "built", right  # not reused: the key holds the stage's digest
    served = engine.containers.run(f"{empty_registry}/pinned/right@{right['digest']}", ["cat", "/tool.txt"],
                                   remove=True)
    assert served.decode().strip() == "second"
    ok(stack.doit("build", "--all"))
    assert stack.report()["images"]["right"]["status"] == "reused"  # the same digest again: reused
