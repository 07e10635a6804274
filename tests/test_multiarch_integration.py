"""Multi-platform images on the real engine: arm64 under QEMU, per-platform tags, a registry-side index."""
from __future__ import annotations

import json
import re
from typing import Any

import docker
import pytest

from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import INDEX_TYPES
from stacks import MakeStack, Stack, publish_test_base_index, two_platform_stack

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def arm64_base(engine: docker.DockerClient, registry: str, test_base: str) -> str:
    """The test base as a two-platform index in the registry: what a multi-platform root builds FROM."""
    try:
        return publish_test_base_index(engine, registry)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def config_of(client: RegistryClient, repository: str, digest: str) -> dict[str, Any]:
    manifest = client.get_manifest(repository, digest)
    assert manifest is not None
    return dict(json.loads(client.get_blob(repository, json.loads(manifest.body)["config"]["digest"])))


def test_amd64_and_arm64_image_and_child_end_as_two_platform_indexes(make_stack: MakeStack, registry: str,
                                                                     test_base: str,
                                                                      arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, arm64_base, "multi")
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
        assert index.media_type in INDEX_TYPES
        entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                   for m in json.loads(index.body)["manifests"]}
        assert set(entries) == {"linux/amd64", "linux/arm64"}
        assert config_of(client, f"multi/{name}", entries["linux/arm64"])["architecture"] == "arm64"
        assert config_of(client, f"multi/{name}", entries["linux/amd64"])["architecture"] == "amd64"
    # The arm64 RUN step really ran under emulation.
    arm_log = (stack.root / "artifacts" / "logs" / "root-linux-arm64.log").read_text()
    assert re.search(r"^\d\d:\d\d:\d\d #\d+ [\d.]+ aarch64$", arm_log, re.M), arm_log  # BuildKit's plain output of uname -m, time-stamped
    # The child's arm64 build was FROM the parent's arm64 image, by digest.
    root_arm = client.manifest_digest("multi/root", "2024.1-main-linux-arm64")
    child_arm_config = config_of(client, "multi/child", client.manifest_digest("multi/child",
                                                                             "2024.1-main-linux-arm64") or "")
    assert child_arm_config["config"]["Labels"]["org.opencontainers.image.base.name"] == \
        f"{registry}/multi/root@{root_arm}"


def test_a_failed_platform_is_left_out_and_reported(make_stack: MakeStack, registry: str, test_base: str,
                                                    arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, arm64_base, "partial", extra='RUN test "$(uname -m)" = x86_64\n', require_all=False)
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


def test_required_platform_failure_fails_the_image(make_stack: MakeStack, registry: str, test_base: str,
                                                   arm64_base: str) -> None:
    stack = make_stack(registry=registry)
    two_platform_stack(stack, arm64_base, "strict", extra='RUN test "$(uname -m)" = x86_64\n')
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    root = stack.report()["images"]["root"]
    assert root["status"] == "failed" and root["reason"].startswith("require_all_platforms: linux/arm64:")
    assert RegistryClient(registry).manifest_digest("strict/root", "2024.1-main") is None
    assert stack.report()["images"]["child"]["status"] == "skipped"
