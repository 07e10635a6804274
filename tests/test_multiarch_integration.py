"""Multi-platform images on the real engine: arm64 under QEMU, per-platform tags, a registry-side index."""
from __future__ import annotations

import json
import uuid

import docker
import pytest

from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stacks import Stack, ensure_test_base_arm64

pytestmark = pytest.mark.integration

ARCH_TEST = """\
import os

MACHINE = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def test_runs_on_its_platform(container):
    code, output = container.run(["uname", "-m"])
    assert code == 0 and output.strip() == MACHINE[os.environ["STACK_PLATFORM"]]
"""


@pytest.fixture(scope="module")
def arm64_base(engine: docker.DockerClient, test_base: str) -> str:
    try:
        return ensure_test_base_arm64(engine)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def two_platform_stack(stack: Stack, base: str, namespace: str, *, extra: str = "", require_all: bool = True) -> None:
    flag = "" if require_all else "\n    require_all_platforms: false"
    stack.write("spec.yml", f"""\
images:
  root:
    image_name: ghcr.io/{namespace}/root
    platforms: [linux/amd64, linux/arm64]{flag}
    build_args: {{NONCE: "{uuid.uuid4().hex}"}}  # a fresh value: the RUN steps really run, never cached
  child:
    image_name: ghcr.io/{namespace}/child
    depend_on: root
    platforms: [linux/amd64, linux/arm64]
tag:
  prefix: "2024.1"
""")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/root/Dockerfile", f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\nARG NONCE\n"
                                          f"RUN echo $NONCE && uname -m && uname -m > /root-arch\n{extra}")
    stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN uname -m > /child-arch\n")
    stack.write("images/tests_common/test_arch.py", ARCH_TEST)
    stack.commit("two platforms")


def config_of(client: RegistryClient, repository: str, digest: str) -> dict:
    manifest = client.get_manifest(repository, digest)
    assert manifest is not None
    return json.loads(client.get_blob(repository, json.loads(manifest.body)["config"]["digest"]))


def test_amd64_and_arm64_image_and_child_end_as_two_platform_indexes(make_stack, registry: str, test_base: str,
                                                                      arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, test_base, "multi")
    result = stack.doit("build", "--all")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    images = stack.report()["images"]
    client = RegistryClient(registry)
    for name in ("root", "child"):
        assert images[name]["platforms_built"] == ["linux/amd64", "linux/arm64"]
        assert images[name]["platforms_failed"] == {}
        assert images[name]["tests"]["passed"] == 2  # the platform test ran once per platform
        index = client.get_manifest(f"multi/{name}", "2024.1-main")
        assert index is not None and index.digest == images[name]["digest"]
        assert index.media_type in multiarch.INDEX_TYPES
        entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                   for m in json.loads(index.body)["manifests"]}
        assert set(entries) == {"linux/amd64", "linux/arm64"}
        assert config_of(client, f"multi/{name}", entries["linux/arm64"])["architecture"] == "arm64"
        assert config_of(client, f"multi/{name}", entries["linux/amd64"])["architecture"] == "amd64"
    # The arm64 RUN step really ran under emulation.
    arm_log = (stack.root / "artifacts" / "logs" / "root-linux-arm64.log").read_text()
    assert "\naarch64\n" in arm_log
    # The child's arm64 build was FROM the parent's arm64 image, by digest.
    root_arm = client.manifest_digest("multi/root", "2024.1-main-linux-arm64")
    child_arm_config = config_of(client, "multi/child", client.manifest_digest("multi/child",
                                                                             "2024.1-main-linux-arm64") or "")
    assert child_arm_config["config"]["Labels"]["org.opencontainers.image.base.name"] == \
        f"{registry}/multi/root@{root_arm}"


def test_a_failed_platform_is_left_out_and_reported(make_stack, registry: str, test_base: str,
                                                    arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, test_base, "partial", extra='RUN test "$(uname -m)" = x86_64\n', require_all=False)
    result = stack.doit("build", "--all")
    images = stack.report()["images"]
    root = images["root"]
    assert root["status"] == "built", root["reason"]
    assert root["platforms_built"] == ["linux/amd64"]
    assert "exited 1" in root["platforms_failed"]["linux/arm64"]
    index = RegistryClient(registry).get_manifest("partial/root", "2024.1-main")
    assert index is not None
    assert [m["platform"]["architecture"] for m in json.loads(index.body)["manifests"]] == ["amd64"]
    # The child wants both platforms (require_all_platforms defaults to true): its arm64 has no parent.
    child = images["child"]
    assert child["status"] == "failed" and child["platforms_built"] == ["linux/amd64"]
    assert "parent root has no linux/arm64 image" in child["reason"]
    assert result.returncode != 0
    # The manifest page lists the platforms that were built.
    page = (stack.root / "wiki" / f"{root['manifest']}.md").read_text()
    assert "| Platforms | linux/amd64 |" in page


def test_required_platform_failure_fails_the_image(make_stack, registry: str, test_base: str,
                                                   arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, test_base, "strict", extra='RUN test "$(uname -m)" = x86_64\n')
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    root = stack.report()["images"]["root"]
    assert root["status"] == "failed" and root["reason"].startswith("require_all_platforms: linux/arm64:")
    assert RegistryClient(registry).manifest_digest("strict/root", "2024.1-main") is None
    assert stack.report()["images"]["child"]["status"] == "skipped"
