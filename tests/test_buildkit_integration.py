"""Builds go through BuildKit on the real engine: today's Dockerfiles, build secrets that leave no trace,
bases resolved per platform from the registry, and a registry build cache for cold runners."""
from __future__ import annotations

import json
import uuid

import docker
import pytest

from stacks import MakeStack, Stack, publish_test_base_index, registry_digest, two_platform_stack

pytestmark = pytest.mark.integration

CANARY = f"canary-secret-{uuid.uuid4().hex}"
MODERN = """\
FROM {base} AS tools
RUN echo made-in-another-stage > /tool.txt

FROM {base}
RUN echo {nonce} > /run-nonce
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/mnt/tool.txt cat /mnt/tool.txt > /copied.txt
RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/runs && cat /cache/runs > /runs.txt'
RUN --mount=type=secret,id=pip_token sh -c 'echo "careless step prints $(cat /run/secrets/pip_token)" && \
    awk "{{ print length(\\$0) }}" /run/secrets/pip_token > /secret-length'
"""


def modern_stack(stack: Stack, base: str, namespace: str) -> None:
    stack.write("spec.yml", f"""\
        images:
          root:
            image_name: ghcr.io/{namespace}/root
            secrets: {{pip_token: STACK_TEST_PIP_TOKEN}}
          child:
            image_name: ghcr.io/{namespace}/child
            depend_on: root
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    # (a step of this run's own: BuildKit's cache ignores secret values, and the secret step must really run)
    stack.write("images/root/Dockerfile", MODERN.format(base=base, nonce=uuid.uuid4().hex))
    stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN cat /copied.txt > /child.txt\n")
    stack.write("images/root/test/test_root.py", f"""\
        def test_the_other_stage_was_mounted(container):
            code, output = container.run(["cat", "/copied.txt"])
            assert code == 0 and output.strip() == "made-in-another-stage"


        def test_the_secret_was_there_during_the_build_only(container):
            code, output = container.run(["sh", "-c", "cat /secret-length; test -e /run/secrets/pip_token || echo gone"])
            assert code == 0 and output.split() == ["{len(CANARY)}", "gone"], output


        def test_image_tests_do_not_get_the_secret():
            import os
            assert "STACK_TEST_PIP_TOKEN" not in os.environ
        """)
    stack.write("images/child/test/test_child.py", """\
        def test_child_builds_on_the_root(container):
            code, output = container.run(["cat", "/child.txt"])
            assert code == 0 and output.strip() == "made-in-another-stage"
        """)
    stack.commit("a modern Dockerfile")


def test_modern_dockerfile_builds_with_mounts_and_a_secret_that_leaves_no_trace(
        make_stack: MakeStack, registry: str, test_base: str, engine: docker.DockerClient) -> None:
    stack = make_stack(registry=registry)
    modern_stack(stack, test_base, "modern")
    result = stack.doit("build", "--all", env={"STACK_TEST_PIP_TOKEN": CANARY})
    assert result.returncode == 0, result.stdout + result.stderr
    images = stack.report()["images"]
    assert {n: r["status"] for n, r in images.items()} == {"root": "built", "child": "built"}
    assert images["root"]["tests"]["passed"] == 3 and images["child"]["tests"]["passed"] == 4  # + the root's
    # The step printed the secret; the log has it redacted.
    assert "careless step prints ***" in (stack.root / "artifacts" / "logs" / "root.log").read_text()
    root_ref = f"{registry}/modern/root@{images['root']['digest']}"

    # The canary is nowhere: output, history, config, any layer of the pushed image, or any file written.
    assert CANARY not in result.stdout + result.stderr
    engine.images.remove(images["root"]["image_id"], force=True)
    engine.images.pull(f"{registry}/modern/root", tag=images["root"]["digest"])
    pulled = engine.images.get(root_ref)
    assert CANARY not in json.dumps(engine.api.history(pulled.id))
    assert CANARY not in json.dumps(pulled.attrs)
    assert CANARY.encode() not in b"".join(pulled.save())
    for path in stack.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_missing_secret_is_refused_before_anything_is_built(make_stack: MakeStack, registry: str,
                                                              test_base: str) -> None:
    stack = make_stack(registry=registry)
    modern_stack(stack, test_base, "nosecret")
    env = {"STACK_TEST_PIP_TOKEN": ""}
    result = stack.doit("build", "--all", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "images.root.secrets.pip_token: $STACK_TEST_PIP_TOKEN is unset or empty" in output
    assert "nothing was built" in output and "Traceback" not in output
    assert not (stack.root / "artifacts" / "build-report.json").exists()
    assert registry_digest(registry, "nosecret/root", "2024.1-main") is None


@pytest.mark.parametrize("local_platform", ["linux/arm64", "linux/amd64"])
def test_a_literal_multi_platform_from_takes_each_platform_whatever_the_engine_holds(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, local_platform: str) -> None:
    base = publish_test_base_index(engine, registry)
    repository, _, tag = base.rpartition(":")
    engine.api.pull(repository, tag=tag, platform=local_platform)  # the engine's copy of the tag: one platform
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, f"literal-{local_platform.split('/')[1]}", literal_from=True)
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    images = stack.report()["images"]
    for name in ("root", "child"):
        assert images[name]["status"] == "built" and images[name]["platforms_built"] == ["linux/amd64", "linux/arm64"]
        assert images[name]["tests"]["passed"] == 2


@pytest.mark.alone  # it empties the engine's whole build cache, under any build running beside it
def test_a_cold_runner_rebuilds_only_the_changed_last_step(make_stack: MakeStack, registry: str, test_base: str,
                                                           engine: docker.DockerClient) -> None:
    stack = make_stack(registry=registry)
    nonce = uuid.uuid4().hex
    stack.write("spec.yml", f"""\
        images:
          slow:
            image_name: ghcr.io/cache/slow
            build_args: {{NONCE: "{nonce}"}}
        tag:
          prefix: "2024.1"
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    dockerfile = f"FROM {test_base}\nARG NONCE\nRUN echo $NONCE && sleep 5 && echo slow > /slow.txt\n"
    stack.write("images/slow/Dockerfile", dockerfile + "RUN echo first > /last.txt\n")
    stack.write("images/slow/test/test_slow.py", """\
        def test_both_steps_are_there(container):
            code, output = container.run(["cat", "/slow.txt", "/last.txt"])
            assert code == 0 and output.split()[0] == "slow"
        """)
    stack.commit("slow image")
    assert stack.doit("build", "--all").returncode == 0
    first = stack.report()["images"]["slow"]

    # A cold runner: none of the stack's images and no build cache in the engine.
    for image in engine.images.list(name=f"{registry}/cache/slow"):
        engine.images.remove(image.id, force=True)
    engine.api.prune_builds(all=True)
    stack.write("images/slow/Dockerfile", dockerfile + "RUN echo changed > /last.txt\n")
    stack.commit("the last step changed")
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    second = stack.report()["images"]["slow"]
    assert second["digest"] != first["digest"]
    log = (stack.root / "artifacts" / "logs" / "slow.log").read_text()
    assert "importing cache manifest from" in log
    slow_step = next(line for line in log.splitlines() if "sleep 5 && echo slow" in line)
    step = next(word for word in slow_step.split() if word.startswith("#"))  # "#7" (after the line's time)
    assert f"{step} CACHED" in log, log  # the slow step came from the registry cache
    # Honest: the rebuilt image really has the change.
    output = engine.containers.run(second["ref"], ["cat", "/last.txt"], remove=True)
    assert output.decode().strip() == "changed"
