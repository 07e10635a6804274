"""SBOMs, content tags and cosign signatures, on the real engine, registry and cosign.

One Debian-based stack is built and pushed once with signing configured (a generated key pair whose
password is a canary); the tests read what that build left in the registry. A second, two-platform
stack proves an SBOM per platform digest.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest
import requests

from stacks import (DEBIAN, MakeStack, Stack, debian_base, publish_test_base_index, registry_digest, running_registry,
                    two_platform_stack)

pytestmark = pytest.mark.integration

CANARY = "cosign-canary-7f3e9d21"
REFERRERS_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")


def cosign() -> str:
    found = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    if not Path(found).is_file():
        pytest.fail("cosign is not installed; run `bash setup.sh env` first", pytrace=False)
    return found


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def manifest(host: str, repository: str, reference: str) -> dict[str, Any]:
    response = requests.get(f"http://{host}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT},
                            timeout=10)
    response.raise_for_status()
    return dict(response.json())


def key_pair(folder: Path, password: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COSIGN_PASSWORD": password}
    subprocess.run([cosign(), "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True)
    return folder / "cosign.key", folder / "cosign.pub"


class Built:
    def __init__(self, stack: Stack, host: str, data: Path, key: Path, pub: Path, output: str) -> None:
        self.stack, self.host, self.data, self.key, self.pub, self.output = stack, host, data, key, pub, output
        self.report: dict[str, Any] = stack.report()  # the signed build's, before later tests build again

    def signing_env(self) -> dict[str, str]:
        return {"STACK_SIGNING_KEY": str(self.key), "COSIGN_PASSWORD": CANARY}


@pytest.fixture(scope="module")
def built(registry_binary: str, tmp_path_factory: pytest.TempPathFactory,
          engine: docker.DockerClient) -> Iterator[Built]:
    debian_base(engine)
    data = tmp_path_factory.mktemp("supply-registry")
    with running_registry(registry_binary, data) as host:
        keys = tmp_path_factory.mktemp("keys")
        key, pub = key_pair(keys, CANARY)
        stack = Stack(tmp_path_factory.mktemp("supply") / "stack", host)
        stack.write("spec.yml", """\
            images:
              deb:
                image_name: ghcr.io/supply/deb
                info_cmds: [OS]
                content_tags:
                  - {name: "debian-{}", command: "cut -d. -f1 /etc/debian_version"}
                  - {name: "shell-{}", command: "echo dash"}
              child:
                image_name: ghcr.io/supply/child
                depend_on: deb
            tag:
              prefix: "2024.1"
            all_info_cmds:
              OS:
                description: Debian version
                command: cat /etc/debian_version
            """)
        stack.write(".gitignore", "artifacts/\n.doit.json*\n")
        stack.write("images/deb/Dockerfile", f"FROM {DEBIAN}\nRUN echo deb > /deb.txt\n")
        stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo child > /child.txt\n")
        stack.commit("debian stack")
        env = {"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": CANARY}
        output = ok(stack.doit("build", env=env))
        yield Built(stack, host, data, key, pub, output)


def test_each_pushed_image_has_a_cyclonedx_sbom_found_through_the_referrers_tag(built: Built,
                                                                              engine: docker.DockerClient) -> None:
    report = built.report["images"]["deb"]
    digest = report["digest"]
    assert report["sboms"] and set(report["sboms"]) == {"linux/amd64"}
    # The registry (2.8) has no referrers API: the fallback tag sha256-<hex> lists the SBOM artifact.
    index = manifest(built.host, "supply/deb", digest.replace(":", "-"))
    assert index["mediaType"] == REFERRERS_INDEX
    sboms = [m for m in index["manifests"] if m["artifactType"] == "application/vnd.cyclonedx+json"]
    assert [m["digest"] for m in sboms] == [report["sboms"]["linux/amd64"]]
    artifact = manifest(built.host, "supply/deb", sboms[0]["digest"])
    assert artifact["subject"]["digest"] == digest and artifact["artifactType"] == "application/vnd.cyclonedx+json"

    out = built.stack.root / "deb.cdx.json"
    said = ok(built.stack.doit("sbom", "--image", "deb", "--tag", "2024.1-main", "--output", str(out)))
    assert sboms[0]["digest"] in said
    document = json.loads(out.read_text())
    assert document["bomFormat"] == "CycloneDX" and document["metadata"]["component"]["version"] == digest
    # The SBOM lists the image's own dpkg packages, at the versions the image has.
    listed = engine.containers.run(f"{built.host}/supply/deb@{digest}", ["dpkg-query", "-W", "-f=${Package}=${Version}\\n"],
                                   remove=True).decode().split()
    expected = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in listed}
    components = {c["name"]: c for c in document["components"]}
    assert expected and {n: c["version"] for n, c in components.items() if c["purl"].startswith("pkg:deb/")} == expected
    assert components["libc6"]["purl"].startswith("pkg:deb/debian/libc6@") and "arch=amd64" in components["libc6"]["purl"]

    # The manifest page links to it.
    page = next((built.stack.root / "wiki").glob("deb-*.md")).read_text()
    assert "## SBOM" in page and f"/v2/supply/deb/manifests/{sboms[0]['digest']}" in page


def test_content_tags_are_pushed_with_the_builds_tags_and_listed(built: Built) -> None:
    report = built.report["images"]["deb"]
    assert report["content_tags"] == ["2024.1-main-debian-12", "2024.1-main-shell-dash"]
    for tag in report["content_tags"]:
        assert registry_digest(built.host, "supply/deb", tag) == report["digest"]
        assert tag in report["tags"]
    page = next((built.stack.root / "wiki").glob("deb-*.md")).read_text()
    tags_row = next(line for line in page.splitlines() if line.startswith("| Tags |"))
    assert "2024.1-main-debian-12" in tags_row and "2024.1-main-shell-dash" in tags_row
    assert any(line.startswith("| Content tag debian-{} |") and "` 12 `" in line for line in page.splitlines())
    assert built.report["images"]["child"]["content_tags"] == []

    # A branch named like a content tag (`evil-debian-99`) reused the digest and so tagged it 2024.1-evil-debian-99:
    # content tags come from the signed statement, so that name is never taken for one.
    forged = requests.get(f"http://{built.host}/v2/supply/deb/manifests/{report['digest']}", headers={"Accept": ACCEPT},
                          timeout=10)
    forged.raise_for_status()
    requests.put(f"http://{built.host}/v2/supply/deb/manifests/2024.1-evil-debian-99", data=forged.content,
                 headers={"Content-Type": forged.headers["Content-Type"]}, timeout=10).raise_for_status()
    # Another branch reuses the image (same inputs): it carries the content tags over, under its own tag.
    built.stack.repo.git.checkout("-b", "copy")
    try:
        ok(built.stack.doit("build", "--all", env=built.signing_env()))
        copy = built.stack.report()["images"]["deb"]
        assert copy["status"] == "reused" and copy["digest"] == report["digest"]
        assert copy["content_tags"] == ["2024.1-copy-debian-12", "2024.1-copy-shell-dash"]
        for tag in copy["content_tags"]:
            assert registry_digest(built.host, "supply/deb", tag) == report["digest"]
        assert copy["signed"] == [report["digest"]]  # found signed already: not signed again
    finally:
        built.stack.repo.git.checkout("main")


def test_a_bad_content_tag_fails_the_image_before_anything_is_pushed(built: Built) -> None:
    stack = built.stack
    spec = (stack.root / "spec.yml").read_text()
    stack.write("spec.yml", spec.replace('command: "echo dash"', 'command: "echo not a tag!"'))
    stack.repo.git.checkout("-b", "badtag")
    stack.commit("a content tag with spaces")
    try:
        result = stack.doit("build", "--image", "deb", "--no-reuse", env=built.signing_env())
        assert result.returncode != 0
        failed = stack.report()["images"]["deb"]
        assert failed["status"] == "failed"
        assert "content tag 'shell-{}'" in failed["reason"] and "not a valid Docker tag" in failed["reason"]
        assert registry_digest(built.host, "supply/deb", "2024.1-badtag") is None
    finally:
        stack.repo.git.checkout("main")


def test_every_pushed_digest_is_signed_and_the_password_appears_nowhere(built: Built) -> None:
    for name in ("deb", "child"):
        digest = built.report["images"][name]["digest"]
        assert built.report["images"][name]["signed"] == [digest]
        verified = subprocess.run([cosign(), "verify", "--key", str(built.pub), "--insecure-ignore-tlog=true",
                                   "--allow-insecure-registry", f"{built.host}/supply/{name}@{digest}"],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stderr
    assert CANARY not in built.output
    for path in [*(built.stack.root / "artifacts").rglob("*"), *(built.stack.root / "wiki").rglob("*"),
                 *built.data.rglob("*")]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_tag_verifies_signatures_and_refuses_unsigned_or_wrongly_signed_digests(
        built: Built, tmp_path: Path) -> None:
    stack = built.stack
    # A build without signing: its digests carry no signature.
    stack.repo.git.checkout("-b", "unsigned")
    stack.write("images/deb/notes.txt", "changed\n")
    stack.write("images/deb/Dockerfile", f"FROM {DEBIAN}\nCOPY notes.txt /notes.txt\n")
    stack.commit("unsigned build")
    try:
        ok(stack.doit("build"))
    finally:
        stack.repo.git.checkout("main")
    verify = {"STACK_SIGNING_PUBKEY": str(built.pub)}
    refused = stack.doit("tag", "--tag", "2024.1-unsigned", env=verify)
    assert refused.returncode != 0
    assert "no valid signature" in refused.stderr and "no tag was moved" in refused.stderr
    assert registry_digest(built.host, "supply/deb", "2024.1-stable") is None

    # Another key: the signature is there, but not by the configured key.
    _, other_pub = key_pair(tmp_path / "other", "other-password")
    wrong = stack.doit("tag", "--tag", "2024.1-main", env={"STACK_SIGNING_PUBKEY": str(other_pub)})
    assert wrong.returncode != 0 and "no valid signature" in wrong.stderr
    assert registry_digest(built.host, "supply/deb", "2024.1-stable") is None

    # The right key, given as the private key (its public half is derived with the password): it moves.
    moved = ok(stack.doit("tag", "--tag", "2024.1-main", env=built.signing_env()))
    assert "signature: verified" in moved and CANARY not in moved
    assert registry_digest(built.host, "supply/deb", "2024.1-stable") == built.report["images"]["deb"]["digest"]


# A dpkg-query that lists one package whose version is the machine it runs on: each platform's inventory differs.
ARCH_PACKAGE = r"""RUN printf '#!/bin/sh\nprintf "arch-pkg\\t%%s\\n" "$(uname -m)"\n' > /bin/dpkg-query && chmod +x /bin/dpkg-query
"""


def test_a_two_platform_image_has_an_sbom_and_a_signature_per_platform_digest(
        make_stack: MakeStack, registry: str, engine: docker.DockerClient, built: Built) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, "sbom-multi", extra=ARCH_PACKAGE)
    ok(stack.doit("build", "--image", "root", env=built.signing_env()))
    root = stack.report()["images"]["root"]
    index = manifest(registry, "sbom-multi/root", root["digest"])
    platforms = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]}
    assert set(root["sboms"]) == set(platforms) == {"linux/amd64", "linux/arm64"}
    for platform, digest in platforms.items():
        listed = manifest(registry, "sbom-multi/root", digest.replace(":", "-"))["manifests"]
        assert [m["digest"] for m in listed] == [root["sboms"][platform]]
    # Each SBOM is its own platform's inventory, asked in a container of that platform.
    machines = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
    for platform in platforms:
        out = stack.root / f"{platform.replace('/', '-')}.cdx.json"
        ok(stack.doit("sbom", "--image", "root", "--tag", "2024.1-main", "--platform", platform, "--output", str(out)))
        document = json.loads(out.read_text())
        assert document["metadata"]["component"]["version"] == platforms[platform]
        assert [(c["name"], c["version"]) for c in document["components"]] == [("arch-pkg", machines[platform])]
    refused = stack.doit("sbom", "--image", "root", "--tag", "2024.1-main")
    assert refused.returncode != 0 and "choose one with --platform" in refused.stderr

    # The index and each platform image are signed; `tag` checks every one of them.
    assert sorted(root["signed"]) == sorted([root["digest"], *platforms.values()])
    arm64 = platforms["linux/arm64"]
    signature = requests.head(f"http://{registry}/v2/sbom-multi/root/manifests/{arm64.replace(':', '-')}.sig",
                              headers={"Accept": ACCEPT}, timeout=10)
    requests.delete(f"http://{registry}/v2/sbom-multi/root/manifests/{signature.headers['Docker-Content-Digest']}",
                    timeout=10).raise_for_status()
    unsigned = stack.doit("tag", "--tag", "2024.1-main", env={"STACK_SIGNING_PUBKEY": str(built.pub)})
    assert unsigned.returncode != 0
    assert f"signature of {arm64[:19]}: no valid signature" in unsigned.stderr
    assert f"signature of {platforms['linux/amd64'][:19]}" not in unsigned.stderr
