"""cosign reaches the registries the builder accepts, the way the builder does: here a registry on another
host that speaks plain HTTP, allowed with STACK_REGISTRY_INSECURE=1 (a real registry, behind a proxy that
listens on this machine's own address). Before, cosign was told nothing and failed on HTTPS.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faultproxy import fault_proxy, non_loopback_address
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.settings import RegistrySettings
from stacks import cosign_key_pair

pytestmark = pytest.mark.integration

PASSWORD = "remote-plain-http-pw"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def small_image(client: RegistryClient, repository: str) -> str:
    """A one-config image pushed as ``repository:1``; its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    config_digest = client.upload_blob(repository, config.encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": len(config)}}
    return client.put_manifest(repository, "1", json.dumps(manifest).encode(), OCI_MANIFEST)


def test_cosign_signs_and_verifies_on_a_remote_plain_http_registry_the_builder_accepts(registry: str,
                                                                                       tmp_path: Path) -> None:
    settings = RegistrySettings(insecure=True)  # STACK_REGISTRY_INSECURE=1
    with fault_proxy(registry, lambda method, path: None, bind=non_loopback_address()) as (host, _counts):
        digest = small_image(RegistryClient(host, settings=settings), "remote/signed")
        key, _public = cosign_key_pair(tmp_path, PASSWORD)
        signing = Signing(key=key, password=PASSWORD, registry=settings, environment=dict(os.environ))
        reference = f"{host}/remote/signed@{digest}"
        signing.sign(reference, None)
        assert signing.verify(reference, None) is None
        unsigned = small_image(RegistryClient(host, settings=settings), "remote/unsigned")
        assert signing.verify(f"{host}/remote/unsigned@{unsigned}", None) is not None  # verification can fail


def test_an_index_around_one_platform_gives_its_platform_manifest_to_sign(registry: str) -> None:
    # What an engine with the containerd image store pushes for one platform: an index, with an attestation.
    client = RegistryClient(registry)
    platform = small_image(client, "containerd/one")
    body = client.get_manifest("containerd/one", platform)
    assert body is not None
    entry = {"mediaType": OCI_MANIFEST, "digest": platform, "size": len(body.body)}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {**entry, "platform": {"os": "linux", "architecture": "amd64"}},
        {**entry, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": platform}}]}
    digest = client.put_manifest("containerd/one", "2", json.dumps(index).encode(),
                                 "application/vnd.oci.image.index.v1+json")
    assert multiarch.platform_manifests(client, "containerd/one", digest) == [platform]
    assert multiarch.platform_manifests(client, "containerd/one", platform) == []  # a platform manifest: itself only
