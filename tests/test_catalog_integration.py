"""The catalog pre-filter against a real registry: a registry lacking most repositories is asked by its
catalog; one holding most is asked one by one; either way every answer is the tag list's."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from faultproxy import fault_proxy
from stack_builder.registry import catalog
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups

pytestmark = pytest.mark.integration

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def publish(host: str, repositories: list[str]) -> None:
    client = RegistryClient(host)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    for repository in repositories:
        digest = client.upload_blob(repository, config.encode())
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "layers": [], "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)}}
        client.put_manifest(repository, "2024.1-main", json.dumps(manifest).encode(), MANIFEST)


def looked_up(host: str, repositories: list[str]) -> tuple[list[str], Counter[str]]:
    """The repositories found under 2024.1-main, and the requests made: tag lists and catalog pages."""
    seen: Counter[str] = Counter()

    def count(_method: str, path: str) -> None:
        seen["catalog" if "/_catalog" in path else "tags" if path.endswith("/tags/list?n=1000") else path] += 1

    with fault_proxy(host, count) as (proxied, _):
        lookups = Lookups(RegistryClient(proxied, retries=0))
        lookups.prefetch(repositories)
        found = [repository for repository in repositories if lookups.has_tag(repository, "2024.1-main")]
    return found, seen


def test_a_registry_lacking_most_repositories_is_asked_by_its_catalog(registry: str) -> None:
    repositories = [f"catalog-few/img{i:03d}" for i in range(150)]
    present = ["catalog-few/img005", "catalog-few/img120"]  # neither in the sample
    assert not set(present) & set(catalog.sample_of(repositories))
    publish(registry, present)
    found, seen = looked_up(registry, repositories)
    assert found == present
    assert seen["catalog"] >= 1 and seen["tags"] == catalog.SAMPLE + len(present), seen


def test_a_registry_holding_most_repositories_is_asked_one_by_one(registry: str) -> None:
    repositories = [f"catalog-most/img{i:03d}" for i in range(120)]
    publish(registry, repositories[:100])
    found, seen = looked_up(registry, repositories)
    assert found == repositories[:100]
    assert seen["catalog"] == 0 and seen["tags"] == len(repositories), seen
