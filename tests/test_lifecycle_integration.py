"""Rollback and yank, on the real engine, registry and git.

- Rollback: the promotion history in the registry lets `tag --rollback` move `stable` and YYYY.Q-stable
  back to the digests they held before the last promotion, through the same gates, once per promotion.
- Yank: a revocation bound to the digest; only the tags on that digest go; promotion, rollback and
  reuse refuse it from then on, naming the reason; the wiki marks it.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any

import docker
import pytest
import requests

from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stacks import MakeStack, Stack, publish_test_base_index, registry_digest, small_stack, two_platform_stack

pytestmark = pytest.mark.integration

IMAGES = ("root", "left", "leaf", "right")
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def digests(host: str, namespace: str, tag: str) -> dict[str, str | None]:
    return {name: registry_digest(host, f"{namespace}/{name}", tag) for name in IMAGES}


def get_json(host: str, path: str) -> dict[str, Any]:
    response = requests.get(f"http://{host}/v2/{path}", headers={"Accept": ACCEPT}, timeout=10)
    response.raise_for_status()
    return dict(response.json())


def two_promoted_builds(stack: Stack, host: str, namespace: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """Build and promote (quarter, then global) twice; the second build changes only the leaf.
    Returns the digests of the first and the second build."""
    ok(stack.doit("build"))
    ok(stack.doit("tag", "--tag", "2024.1-main"))
    ok(stack.doit("tag", "--tag", "2024.1", "--global-stable"))
    first = digests(host, namespace, "2024.1-main")
    stack.write("images/leaf/notes.txt", "second build\n")
    stack.commit("leaf: notes")
    ok(stack.doit("build", "--base-ref", "HEAD~1"))
    ok(stack.doit("tag", "--tag", "2024.1-main"))
    ok(stack.doit("tag", "--tag", "2024.1", "--global-stable"))
    second = digests(host, namespace, "2024.1-main")
    assert first["leaf"] != second["leaf"] and first["root"] == second["root"]
    assert digests(host, namespace, "stable") == second
    return first, second


def test_rollback_moves_stable_back_once_per_promotion_through_the_gates(
        make_stack: MakeStack, empty_registry: str, test_base: str) -> None:
    host = empty_registry
    stack = make_stack(registry=host)
    small_stack(stack, test_base, namespace="roll")
    stack.commit("initial")
    first, second = two_promoted_builds(stack, host, "roll")

    # The history is in the registry, beside the image.
    history = get_json(host, "roll/leaf/manifests/promotions.stable")
    assert history["artifactType"] == "application/vnd.stack-builder.promotions.v1+json"

    dry = ok(stack.doit("tag", "--rollback", "--global-stable", "--dry-run"))
    assert "dry run" in dry and digests(host, "roll", "stable") == second

    ok(stack.doit("tag", "--rollback", "--tag", "2024.1"))
    assert digests(host, "roll", "2024.1-stable") == first
    assert digests(host, "roll", "stable") == second  # the quarter's rollback leaves the global tag alone

    out = ok(stack.doit("tag", "--rollback", "--global-stable"))
    assert "rollback of global stable: 1 tags moved" in out
    assert digests(host, "roll", "stable") == first
    promotion = json.loads((stack.root / "artifacts" / "promotion.json").read_text())
    assert promotion["rollback"] is True and promotion["outcome"] == "complete"
    assert [m["image"] for m in promotion["moves"]] == ["leaf"]
    stable_page = (stack.root / "wiki" / "Stable_Tag.md").read_text()
    assert "undid promotion" in stable_page and "rollback" in stable_page

    # The first promotion created `stable`: there is nothing before it, so a second rollback is refused.
    again = refused(stack.doit("tag", "--rollback", "--global-stable"))
    assert "did not exist before promotion" in again and "no tag was moved" in again
    assert digests(host, "roll", "stable") == first

    # A tag moved by hand since the promotion: the rollback will not overwrite it.
    leaf_manifest = requests.get(f"http://{host}/v2/roll/leaf/manifests/{first['leaf']}",
                                 headers={"Accept": ACCEPT}, timeout=10)
    ok(stack.doit("tag", "--tag", "2024.1-main"))  # 2024.1-stable forward to the second build again
    requests.put(f"http://{host}/v2/roll/leaf/manifests/2024.1-stable", data=leaf_manifest.content,
                 headers={"Content-Type": leaf_manifest.headers["Content-Type"]}, timeout=10).raise_for_status()
    raced = refused(stack.doit("tag", "--rollback", "--tag", "2024.1"))
    assert "it moved since; refusing to roll back over it" in raced, raced

    bad = refused(stack.doit("tag", "--rollback", "--tag", "2024.1-main"))
    assert "--rollback needs --tag YYYY.Q" in bad


def test_yank_removes_only_the_tags_on_the_digest_and_is_refused_from_then_on(
        make_stack: MakeStack, empty_registry: str, test_base: str) -> None:
    host = empty_registry
    stack = make_stack(registry=host)
    small_stack(stack, test_base, namespace="yank")
    stack.commit("initial")
    first_commit = stack.repo.head.commit.hexsha
    first, second = two_promoted_builds(stack, host, "yank")
    old, current = str(first["leaf"]), str(second["leaf"])
    old_tag = f"2024.1-git-{first_commit[:12]}"
    assert registry_digest(host, "yank/leaf", old_tag) == old

    # A dry run says which tags would go, and changes nothing.
    dry = ok(stack.doit("yank", "--image", "leaf", "--digest", old, "--reason", "CVE-2026-0001 in busybox",
                        "--dry-run"))
    assert old_tag in dry and "dry run" in dry
    assert registry_digest(host, "yank/leaf", old_tag) == old

    ok(stack.doit("yank", "--image", "leaf", "--digest", old, "--reason", "CVE-2026-0001 in busybox"))
    assert registry_digest(host, "yank/leaf", old_tag) is None
    assert digests(host, "yank", "stable") == second  # tags on other digests stay
    assert registry_digest(host, "yank/root", f"2024.1-git-{first_commit[:12]}") == first["root"]
    listed = get_json(host, f"yank/leaf/manifests/{old.replace(':', '-')}")["manifests"]
    revocation = [m for m in listed if m["artifactType"] == "application/vnd.stack-builder.revocation.v1+json"]
    assert len(revocation) == 1
    assert get_json(host, f"yank/leaf/manifests/{revocation[0]['digest']}")["subject"]["digest"] == old

    # Rollback to the yanked digest is refused, with the reason; nothing moves.
    rolled = refused(stack.doit("tag", "--rollback", "--global-stable"))
    assert "CVE-2026-0001 in busybox" in rolled and "no tag was moved" in rolled
    assert digests(host, "yank", "stable") == second

    # Yanking the current stable: every tag on it goes, and the user is told to roll back.
    saved = requests.get(f"http://{host}/v2/yank/leaf/manifests/{current}", headers={"Accept": ACCEPT}, timeout=10)
    out = ok(stack.doit("yank", "--image", "leaf", "--digest", current, "--reason", "bad model weights"))
    assert "roll back" in out and "stack-builder tag --rollback --global-stable" in out
    for tag in ("2024.1-main", "2024.1-stable", "stable", f"2024.1-git-{stack.repo.head.commit.hexsha[:12]}"):
        assert registry_digest(host, "yank/leaf", tag) is None, tag
    assert registry_digest(host, "yank/root", "stable") == second["root"]
    page = next(p for p in (stack.root / "wiki").glob("leaf-*.md")
                if current in p.read_text() and "Digest" in p.read_text())
    assert "**Yanked**" in page.read_text() and "bad model weights" in page.read_text()
    assert "bad model weights" in (stack.root / "wiki" / "Stable_Tag.md").read_text()

    # The yanked manifest comes back under the branch tag (a stale mirror, a careless push): reuse refuses it.
    requests.put(f"http://{host}/v2/yank/leaf/manifests/2024.1-main", data=saved.content,
                 headers={"Content-Type": saved.headers["Content-Type"]}, timeout=10).raise_for_status()
    ok(stack.doit("build", "--image", "leaf"))
    leaf = stack.report()["images"]["leaf"]
    assert leaf["status"] == "built" and leaf["digest"] != current
    assert "not reused" in open(leaf["log"]).read() and "bad model weights" in open(leaf["log"]).read()

    # ... and promotion refuses it, naming the reason.
    requests.put(f"http://{host}/v2/yank/leaf/manifests/2024.1-old", data=saved.content,
                 headers={"Content-Type": saved.headers["Content-Type"]}, timeout=10).raise_for_status()
    promoted = refused(stack.doit("tag", "--tag", "2024.1-old"))
    assert "bad model weights" in promoted and "never promoted" in promoted

    bad = refused(stack.doit("yank", "--image", "leaf", "--digest", "sha256:abc", "--reason", "x"))
    assert "is not a digest" in bad
    missing = refused(stack.doit("yank", "--image", "leaf", "--digest", current))
    assert "--reason is required" in missing


def test_yanking_an_index_yanks_its_platform_images_but_never_breaks_another_index(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, "yank-multi")
    ok(stack.doit("build", "--image", "root"))
    client = RegistryClient(registry)
    index = client.get_manifest("yank-multi/root", "2024.1-main")
    assert index is not None
    platforms = {m["platform"]["architecture"]: m["digest"] for m in json.loads(index.body)["manifests"]}
    # Another index lists the amd64 image too (as a one-platform variant of the image might).
    multiarch.publish_index(client, "yank-multi/root", ["amd64-only"],
                            [multiarch.Entry("linux/amd64", platforms["amd64"], "", 0)])

    out = ok(stack.doit("yank", "--image", "root", "--digest", index.digest, "--reason", "broken build"))
    assert "yank-multi/root:amd64-only" in out and "yank that index too" in out
    assert client.manifest_digest("yank-multi/root", "2024.1-main") is None
    assert client.manifest_digest("yank-multi/root", "2024.1-main-linux-arm64") is None
    # The amd64 image keeps its tags, and the other index still works; both platform images are refused.
    assert client.manifest_digest("yank-multi/root", "2024.1-main-linux-amd64") == platforms["amd64"]
    assert client.manifest_digest("yank-multi/root", "amd64-only") is not None
    for digest in platforms.values():
        assert client.manifest_digest("yank-multi/root", f"{digest.replace(':', '-')}.yank") is not None
