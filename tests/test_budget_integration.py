"""Budgets on the real engine and registry, written as the failures people hit: an image one byte over its size
budget is not pushed (and is with the budget one byte higher), a denied package is named with its version, an
image that grew over its quarter-stable names the layer and the packages that grew, and --allow-over-budget
pushes it anyway and says so in the report and on the manifest page."""
from __future__ import annotations

import json
from typing import Any

import docker
import pytest

from stack_builder.checks.budget import total_size
from stack_builder.engine import layersizes
from stack_builder.registry.client import RegistryClient

from stacks import Stack, registry_digest

pytestmark = pytest.mark.integration

SPEC = """\
images:
  sized:
    image_name: ghcr.io/{ns}/sized
    budget: {budget}
  sized-child:
    image_name: ghcr.io/{ns}/sized-child
    depend_on: sized
  denied:
    image_name: ghcr.io/{ns}/denied
    budget: {{deny: {{apt: ["openssh-*"], pip: ["tensorflow*"]}}}}
tag:
  prefix: "2024.1"
"""


def fake_dpkg(lines: str) -> str:
    """A dpkg-query that prints ``lines`` whatever it is asked (what the manifest container's apt query reads)."""
    return f"printf '#!/bin/sh\\nprintf \"{lines}\"\\n' > /bin/dpkg-query && chmod +x /bin/dpkg-query"


def write_stack(stack: Stack, base: str, ns: str, budget: str) -> None:
    stack.write("spec.yml", SPEC.format(ns=ns, budget=budget))
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/sized/Dockerfile", f"FROM {base}\nRUN echo sized > /sized.txt\n")
    stack.write("images/sized-child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo child > /child.txt\n")
    denied = fake_dpkg("openssh-server\\\\t1:9.2p1-2\\\\n")
    stack.write("images/denied/Dockerfile", f"FROM {base}\nRUN {denied}\n")
    stack.commit(f"budget {budget}")


def build(stack: Stack, *args: str) -> dict[str, Any]:
    result = stack.doit("build", "--all", "--workers", "2", *args)
    report = stack.report()
    assert (result.returncode == 0) == all(r["status"] == "built" for r in report["images"].values()), \
        result.stdout + result.stderr
    return dict(report["images"])


def test_one_byte_over_the_size_budget_fails_before_the_push_and_one_byte_more_passes(
        make_stack: Any, registry: str, test_base: str, engine: docker.DockerClient) -> None:
    ns = "budget-size"
    stack = make_stack(registry=registry)
    write_stack(stack, test_base, ns, "{size: 1}")
    images = build(stack)
    # A denied package fails its image, naming the package and its version; nothing of it is pushed.
    assert images["denied"]["status"] == "failed"
    assert "denied packages: apt openssh-server 1:9.2p1-2 (matches 'openssh-*')" in images["denied"]["reason"]
    assert registry_digest(registry, f"{ns}/denied", "2024.1-main") is None
    # The size the build measured is the one the measuring function gives for the image the engine holds.
    local = engine.images.get(f"{registry}/{ns}/sized:2024.1-main")
    size = total_size(layersizes.measure(engine, str(local.id)))
    assert f"size {size} B" in images["sized"]["reason"] or f"({size} bytes) compressed" in images["sized"]["reason"]
    assert "largest layers: " in images["sized"]["reason"] and "echo sized > /sized.txt" in images["sized"]["reason"]

    write_stack(stack, test_base, ns, f"{{size: {size - 1}}}")
    images = build(stack)
    assert images["sized"]["status"] == "failed", images["sized"]
    assert "over the budget of" in images["sized"]["reason"] and "by 1 B" in images["sized"]["reason"]
    assert "nothing was pushed" in images["sized"]["reason"]
    assert images["sized-child"]["status"] == "skipped"
    assert registry_digest(registry, f"{ns}/sized", "2024.1-main") is None
    assert registry_digest(registry, f"{ns}/sized-child", "2024.1-main") is None

    write_stack(stack, test_base, ns, f"{{size: {size}}}")
    images = build(stack)
    assert images["sized"]["status"] == "built" and images["sized-child"]["status"] == "built", images
    assert registry_digest(registry, f"{ns}/sized", "2024.1-main") == images["sized"]["digest"]
    name = f"sized-2024.1-git-{stack.repo.head.commit.hexsha[:12]}"
    record = json.loads((stack.root / "artifacts" / "manifests" / f"{name}.json").read_text())
    assert record["budget"]["size"] == {"limit": size, "used": {"linux/amd64": size}}


def copy_tag(registry: str, repository: str, source: str, target: str) -> None:
    client = RegistryClient(registry)
    manifest = client.get_manifest(repository, source)
    assert manifest is not None
    client.put_manifest(repository, target, manifest.body, manifest.media_type)


GROWING = """\
images:
  app:
    image_name: ghcr.io/{ns}/app
    budget: {{growth: 5}}
tag:
  prefix: "2024.1"
"""


def test_growth_over_the_stable_names_the_layer_and_packages_and_allow_over_budget_pushes_it(
        make_stack: Any, registry: str, test_base: str) -> None:
    ns = "budget-growth"
    stack = make_stack(registry=registry)
    stack.write("spec.yml", GROWING.format(ns=ns))
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    first, second = fake_dpkg("stack-pkg\\\\t1.0\\\\n"), fake_dpkg("stack-pkg\\\\t1.0\\\\nextra\\\\t2.0\\\\n")
    stack.write("images/app/Dockerfile", f"FROM {test_base}\nRUN {first}\n")
    stack.commit("first")
    assert build(stack)["app"]["status"] == "built"  # no quarter-stable yet: growth is not applied
    copy_tag(registry, f"{ns}/app", "2024.1-main", "2024.1-stable")

    stack.write("images/app/Dockerfile", f"FROM {test_base}\nRUN {second}\nRUN head -c 300000 /dev/urandom > /big.bin\n")
    stack.commit("grows")
    before = registry_digest(registry, f"{ns}/app", "2024.1-main")
    app = build(stack)["app"]
    assert app["status"] == "failed"
    reason = app["reason"]
    assert "over 2024.1-stable" in reason and "is over the budget of 5%" in reason, reason
    assert "layers that grew most since 2024.1-stable: +" in reason and "head -c 300000 /dev/urandom" in reason
    assert "packages added since 2024.1-stable: apt extra 2.0" in reason
    assert registry_digest(registry, f"{ns}/app", "2024.1-main") == before  # nothing pushed

    app = build(stack, "--allow-over-budget")["app"]
    assert app["status"] == "built" and app["allowed_over_budget"] is True
    assert registry_digest(registry, f"{ns}/app", "2024.1-main") == app["digest"] != before
    name = f"app-2024.1-git-{stack.repo.head.commit.hexsha[:12]}"
    record = json.loads((stack.root / "artifacts" / "manifests" / f"{name}.json").read_text())
    assert record["budget"]["allowed_over"] is True and record["budget"]["growth"]["used"]["linux/amd64"]["percent"] > 5
    page = (stack.root / "wiki" / f"{name}.md").read_text()
    assert "## Budget" in page and "pushed with `--allow-over-budget`" in page and "| growth | 5% |" in page

    # Built again without the flag: the same input key is published, so the image is reused, and the reuse is
    # judged by the registry's numbers: --allow-over-budget does not carry over to later runs.
    again = build(stack)["app"]
    assert again["status"] == "failed", again
    assert "the reused image, by the registry's numbers" in again["reason"] and "over 2024.1-stable" in again["reason"]
    assert again["allowed_over_budget"] is False
