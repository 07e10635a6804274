"""`stack-builder gc` on the real registry, written as the failures people hit when they prune by hand.

One two-platform image, signed, built at three commits of main and promoted twice: the first build is the old
`2024.1-stable` (a rollback needs it: only the promotion history names it now), the third is the current one,
and the second is what nothing keeps once a branch keeps one build. gc must delete exactly the second build
(its index, platform manifests, SBOMs, signatures) and nothing else; afterwards every kept tag must pull, for
each platform, blob by blob, and `cosign verify` must still pass, after the registry's own garbage collection.
"""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest

from stack_builder.registry.client import RegistryClient
from stacks import ARCH_TEST, Stack, cosign, cosign_key_pair, publish_test_base_index, running_registry

pytestmark = pytest.mark.integration

PASSWORD = "gc-signing-key"


class Built:
    def __init__(self, stack: Stack, host: str, config: Path, pub: Path, reports: list[dict[str, Any]]) -> None:
        self.stack, self.host, self.config, self.pub, self.reports = stack, host, config, pub, reports

    def digests_of(self, report: dict[str, Any]) -> set[str]:
        """Every manifest a build's root put in the registry: index, platform images, SBOMs."""
        root = report["images"]["root"]
        return {root["digest"], *root["signed"], *root["sboms"].values()}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(registry_binary: str, tmp_path_factory: pytest.TempPathFactory,
          engine: docker.DockerClient) -> Iterator[Built]:
    data = tmp_path_factory.mktemp("gc-registry")
    with running_registry(registry_binary, data) as host:
        _key, pub = cosign_key_pair(tmp_path_factory.mktemp("gc-keys"), PASSWORD)
        signing = {"STACK_SIGNING_KEY": str(_key), "COSIGN_PASSWORD": PASSWORD}
        base = publish_test_base_index(engine, host)
        stack = Stack(tmp_path_factory.mktemp("gc") / "stack", host)
        stack.write("spec.yml", """\
            images:
              root:
                image_name: ghcr.io/gc/root
                platforms: [linux/amd64, linux/arm64]
            tag:
              prefix: "2024.1"
            """)
        stack.write(".gitignore", "artifacts/\n.doit.json*\n")
        stack.write("images/root/Dockerfile", f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n"
                                              f"RUN echo {uuid.uuid4().hex} > /nonce\n")
        stack.write("images/tests_common/test_arch.py", ARCH_TEST)
        stack.commit("one image, two platforms")
        reports = []
        for round_ in range(3):
            if round_:
                dockerfile = stack.root / "images" / "root" / "Dockerfile"
                dockerfile.write_text(dockerfile.read_text() + f"RUN echo round {round_} > /round\n")
                stack.commit(f"round {round_}")
            ok(stack.doit("build", *(["--base-ref", "HEAD~1"] if round_ else []), env=signing))
            reports.append(stack.report())
            if round_ in (0, 2):  # the first and the last build are promoted to 2024.1-stable
                ok(stack.doit("tag", "--tag", "2024.1-main", env=signing))
        yield Built(stack, host, data / "config.yml", pub, reports)


def test_gc_deletes_exactly_the_unkept_build_and_every_kept_tag_still_pulls(built: Built) -> None:
    client = RegistryClient(built.host)
    first, second, third = built.reports
    assert client.manifest_digest("gc/root", "2024.1-stable") == third["images"]["root"]["digest"]
    before_tags = client.tags("gc/root")

    dry = ok(built.stack.doit("gc", "--dry-run", "--builds", "1", "--days", "0"))
    plan = json.loads((built.stack.root / "artifacts" / "gc-plan.json").read_text())
    planned = {d["digest"] for r in plan["repositories"] for d in r["deletions"]}
    second_digests = built.digests_of(second)
    # The second build's index, platform images and SBOMs, with its signatures and referrers indexes; nothing
    # of the first (the history names it) or the third (stable, main, the newest build).
    assert second_digests <= planned, dry
    assert not planned & (built.digests_of(first) | built.digests_of(third)), dry
    assert "dry run: nothing was deleted" in dry
    assert client.tags("gc/root") == before_tags  # the dry run deleted nothing
    assert any("named in the promotion history" in why for r in plan["repositories"] for why in r["kept"].values())

    applied = ok(built.stack.doit("gc", "--plan", str(built.stack.root / "artifacts" / "gc-plan.json"),
                                  "--registry-gc", str(built.config)))
    assert f"deleted {len(planned)} manifest(s)" in applied
    assert "registry garbage collection: storage" in applied and "checked: every tag left resolves" in applied
    for digest in second_digests:
        assert client.get_manifest("gc/root", digest) is None, digest
    commit_tag = second["images"]["root"]["tags"][-1]
    assert commit_tag.startswith("2024.1-git-") and commit_tag not in client.tags("gc/root")

    # Every tag left pulls on each of its platforms, every blob read and checked against its digest.
    for tag in ("2024.1-stable", "2024.1-main", first["images"]["root"]["tags"][-1], "promotions.2024.1-stable"):
        pulled = pull_everything(client, "gc/root", tag)
        assert pulled, tag
    index = json.loads(client.get_manifest("gc/root", "2024.1-stable").body)  # type: ignore[union-attr]
    assert {m["platform"]["architecture"] for m in index["manifests"]} >= {"amd64", "arm64"}
    # The old stable (the rollback's target) and the current one still verify, index and platform images.
    for report in (first, third):
        for digest in report["images"]["root"]["signed"]:
            verified = subprocess.run([cosign(), "verify", "--key", str(built.pub), "--insecure-ignore-tlog=true",
                                       "--allow-insecure-registry", f"{built.host}/gc/root@{digest}"],
                                      capture_output=True, text=True, timeout=120)
            assert verified.returncode == 0, f"{digest}: {verified.stderr}"
        for platform, sbom in report["images"]["root"]["sboms"].items():
            assert client.get_manifest("gc/root", sbom) is not None, platform  # its SBOM survived
    # A rollback still finds what it needs.
    ok(built.stack.doit("tag", "--rollback", "--tag", "2024.1", "--dry-run"))


def pull_everything(client: RegistryClient, repository: str, reference: str) -> int:
    """Read ``reference`` as a pull would, every platform and every blob (each checked against its digest);
    the number of blobs read."""
    manifest = client.get_manifest(repository, reference)
    assert manifest is not None, reference
    body = json.loads(manifest.body)
    if "manifests" in body:
        return sum(pull_everything(client, repository, m["digest"]) for m in body["manifests"])
    blobs = [body["config"], *body.get("layers", [])]
    for blob in blobs:
        assert len(client.get_blob(repository, blob["digest"])) == blob["size"]
    return len(blobs)


def test_a_tag_pushed_between_the_plan_and_the_apply_stops_it(built: Built) -> None:
    client = RegistryClient(built.host)
    ok(built.stack.doit("gc", "--dry-run", "--builds", "1", "--days", "0"))
    plan_file = built.stack.root / "artifacts" / "gc-plan.json"
    saved = plan_file.read_text()
    # Someone pushes a tag meanwhile (on the newest build: gc must not delete what it now keeps).
    newest = client.get_manifest("gc/root", "2024.1-main")
    assert newest is not None
    client.put_manifest("gc/root", "pushed-meanwhile", newest.body, newest.media_type)
    tags_before = client.tags("gc/root")
    refused = built.stack.doit("gc", "--plan", str(plan_file))
    assert refused.returncode != 0
    assert "the registry changed since the gc plan was made" in refused.stderr
    assert "gc/root:pushed-meanwhile was absent" in refused.stderr and "nothing was deleted" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert client.tags("gc/root") == tags_before
    assert json.loads(plan_file.read_text())["tags"] == json.loads(saved)["tags"]  # the plan it refused, unchanged
