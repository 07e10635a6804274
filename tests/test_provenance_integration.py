"""Provenance you can verify: nothing is reused, built on, signed or promoted on the word of a label.

Written as the attack, on the real engine, registry and cosign: an attacker who can push learns the next
commit's input key (a `--no-push` build), builds an image of their own with that label, and pushes it under
the next commit's per-commit tag before the real run, even signing a statement for it with a key of their
own. With the stack's key configured, the real run must build and test the image itself, sign only what it
built, and the branch tag must never serve the planted digest.
"""
from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import docker
import pytest
import requests

from faultproxy import fault_proxy
from stacks import MakeStack, Stack, cosign, cosign_key_pair, registry_digest, small_stack

pytestmark = pytest.mark.integration

PASSWORD = "provenance-test"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return str(output)


def key_pair(folder: Path) -> tuple[Path, Path]:
    return cosign_key_pair(folder, PASSWORD)


def cosign_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cosign(), *args], env={**os.environ, "COSIGN_PASSWORD": PASSWORD, "COSIGN_YES": "true"},
                          capture_output=True, text=True, timeout=120)


def plant(engine: docker.DockerClient, base: str, reference: str, input_key: str) -> str:
    """An image nobody tested, labelled with ``input_key``, pushed as ``reference``; its digest."""
    dockerfile = f"FROM {base}\nRUN echo planted > /leaf.txt\nLABEL io.stack-builder.input-key={input_key}\n"
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True)
    repository, _, tag = reference.rpartition(":")
    image.tag(repository, tag)
    for line in engine.images.push(repository, tag, stream=True, decode=True):
        assert "error" not in line, line
    host, _, path = repository.partition("/")
    digest = registry_digest(host, path, tag)
    assert digest
    return digest


def test_a_planted_image_under_the_next_commits_tag_is_not_reused_signed_or_served(
        make_stack: MakeStack, empty_registry: str, test_base: str, engine: docker.DockerClient,
        tmp_path: Path) -> None:
    key, pub = key_pair(tmp_path / "stack-keys")
    their_key, _ = key_pair(tmp_path / "attacker-keys")
    signing = {"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": PASSWORD}
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="plant")
    stack.commit("initial")
    ok(stack.doit("build", env=signing))

    stack.write("images/leaf/notes.txt", "the next commit\n")
    stack.commit("leaf: notes")
    ok(stack.doit("build", "--no-push", "--image", "leaf"))  # anyone with the sources learns the next input key
    input_key = str(stack.report()["images"]["leaf"]["input_key"])
    assert input_key.startswith("sha256:")
    commit_tag = f"2024.1-git-{stack.repo.head.commit.hexsha[:12]}"
    planted = plant(engine, test_base, f"{empty_registry}/plant/leaf:{commit_tag}", input_key)
    # ... and signs a statement for it with a key of their own.
    attacker = cosign_run("attest", "--key", str(their_key), "--tlog-upload=false", "--allow-insecure-registry",
                          "--type", "https://slsa.dev/provenance/v1", "--predicate", str(_predicate(tmp_path, input_key)),
                          f"{empty_registry}/plant/leaf@{planted}")
    assert attacker.returncode == 0, attacker.stderr

    output = ok(stack.doit("build", "--all", env=signing))
    assert {n: r["status"] for n, r in stack.report()["images"].items()} == {
        "root": "reused", "left": "reused", "right": "reused", "leaf": "built"}  # (their statements verify)
    leaf = stack.report()["images"]["leaf"]
    assert leaf["status"] == "built", leaf  # built and tested here, not "reused" on the label's word
    assert leaf["digest"] != planted and planted not in leaf["signed"]
    assert registry_digest(empty_registry, "plant/leaf", "2024.1-main") == leaf["digest"]
    assert "no valid statement" in output
    # The per-commit tag is written once, but not kept for a digest no statement of ours vouches for.
    assert registry_digest(empty_registry, "plant/leaf", commit_tag) == leaf["digest"]
    assert any(commit_tag in note and planted in note and "replaced" in note for note in leaf["notes"])
    unsigned = cosign_run("verify", "--key", str(pub), "--insecure-ignore-tlog=true", "--allow-insecure-registry",
                          f"{empty_registry}/plant/leaf@{planted}")
    assert unsigned.returncode != 0  # the stack's key never signed the planted digest
    ours = cosign_run("verify-attestation", "--key", str(pub), "--insecure-ignore-tlog=true",
                      "--allow-insecure-registry", "--type", "https://slsa.dev/provenance/v1",
                      f"{empty_registry}/plant/leaf@{leaf['digest']}")
    assert ours.returncode == 0, ours.stderr  # what the run built carries its statement

    # A promotion refuses a digest without the stack's statement, even if someone signed it with our key.
    sign = cosign_run("sign", "--key", str(key), "--tlog-upload=false", "--allow-insecure-registry",
                      f"{empty_registry}/plant/leaf@{planted}")
    assert sign.returncode == 0, sign.stderr
    stack.repo.git.checkout("-b", "planted")
    _retag(empty_registry, "plant/leaf", planted, "2024.1-planted")
    for name in ("root", "left", "right"):
        _retag(empty_registry, f"plant/{name}", str(registry_digest(empty_registry, f"plant/{name}", "2024.1-main")),
               "2024.1-planted")
    refused = stack.doit("tag", "--tag", "2024.1-planted", env={"STACK_SIGNING_PUBKEY": str(pub)})
    assert refused.returncode != 0
    assert "no build statement signed by" in refused.stderr + refused.stdout
    assert registry_digest(empty_registry, "plant/leaf", "2024.1-stable") is None


def test_a_child_is_never_built_on_a_parent_without_a_statement(
        make_stack: MakeStack, empty_registry: str, test_base: str, engine: docker.DockerClient,
        tmp_path: Path) -> None:
    key, _ = key_pair(tmp_path / "keys")
    signing = {"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": PASSWORD}
    stack = make_stack(registry=empty_registry)
    small_stack(stack, test_base, namespace="parent")
    stack.commit("initial")
    ok(stack.doit("build"))  # pushed without signing: no statements anywhere
    stack.write("images/leaf/notes.txt", "a change of the leaf only\n")
    stack.commit("leaf: notes")
    result = stack.doit("build", "--image", "leaf", env=signing)
    assert result.returncode != 0
    leaf = stack.report()["images"]["leaf"]
    assert leaf["status"] == "failed" and "has no statement signed by" in leaf["reason"], leaf["reason"]
    assert "--image left" in leaf["reason"]


def _predicate(folder: Path, input_key: str) -> Path:
    path = folder / "predicate.json"
    path.write_text('{"buildDefinition": {"buildType": "https://github.com/stack-builder/image-build/v1", '
                    '"externalParameters": {"image": "leaf", "commit": "x", "platform": "linux/amd64", '
                    f'"inputKey": "{input_key}"}}, "resolvedDependencies": []}}, "runDetails": {{}}}}')
    return path


def _retag(host: str, repository: str, digest: str, tag: str) -> None:
    accept = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
              "application/vnd.docker.distribution.manifest.v2+json, "
              "application/vnd.docker.distribution.manifest.list.v2+json")
    got = requests.get(f"http://{host}/v2/{repository}/manifests/{digest}", headers={"Accept": accept}, timeout=10)
    got.raise_for_status()
    put = requests.put(f"http://{host}/v2/{repository}/manifests/{tag}", data=got.content,
                       headers={"Content-Type": got.headers["Content-Type"]}, timeout=10)
    put.raise_for_status()


def test_a_yank_racing_a_reuse_of_the_same_digest_wins(make_stack: MakeStack, empty_registry: str,
                                                        test_base: str) -> None:
    """The yank lands after the build found the digest reusable and before it put the branch's tags back on it
    (the proxy runs the yank when the build's first tag write for the leaf arrives)."""
    yanked: dict[str, str] = {}
    stack_box: list[Stack] = []

    def rule(method: str, path: str) -> int | str | None:
        if method == "PUT" and path.endswith("/race/leaf/manifests/2024.1-feature") and not yanked:
            stack = stack_box[0]
            digest = str(registry_digest(empty_registry, "race/leaf", "2024.1-main"))
            yanked["digest"] = digest
            yanked["output"] = ok(stack.doit("yank", "--image", "leaf", "--digest", digest, "--reason", "race"))
        return None

    with fault_proxy(empty_registry, rule) as (proxy, _):
        stack = make_stack(registry=proxy)
        stack_box.append(stack)
        small_stack(stack, test_base, namespace="race")
        stack.commit("initial")
        ok(stack.doit("build"))
        stack.repo.git.checkout("-b", "feature")
        result = stack.doit("build", "--all")
    assert yanked, "the build never wrote the leaf's branch tag"
    leaf = stack.report()["images"]["leaf"]
    assert result.returncode != 0 and leaf["status"] == "failed", leaf
    assert "was yanked while this run reused it" in leaf["reason"]
    assert registry_digest(empty_registry, "race/leaf", "2024.1-feature") != yanked["digest"]
    assert registry_digest(empty_registry, "race/leaf", "2024.1-main") != yanked["digest"]
