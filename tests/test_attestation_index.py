"""Docker 29's containerd image store pushes one platform as an index with an attestation entry
(platform unknown/unknown). The index and platform checks take the image entry and skip the rest.

We cannot run Docker 29 here: the unit tests use such an index as JSON, and the integration test
stores one in the real registry, as that engine would push it.
"""
from __future__ import annotations

import json

import pytest

from stack_builder.errors import RegistryError
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import OCI_INDEX
from stacks import push_two_platform_index

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
AMD64 = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 10,
         "platform": {"architecture": "amd64", "os": "linux"}}
ATTESTATION = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 10,
               "platform": {"architecture": "unknown", "os": "unknown"},
               "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                               "vnd.docker.reference.digest": "sha256:" + "a" * 64}}


def test_attestation_entries_are_not_images() -> None:
    assert multiarch.is_attestation(ATTESTATION)
    assert multiarch.is_attestation({**ATTESTATION, "annotations": {}})  # unknown/unknown alone
    assert multiarch.is_attestation({**AMD64, "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
    assert not multiarch.is_attestation(AMD64)
    assert multiarch.image_entries({"manifests": [ATTESTATION, AMD64]}) == [AMD64]
    assert multiarch.image_entries({"manifests": "nonsense"}) == []


@pytest.mark.integration
def test_a_pushed_index_with_an_attestation_is_accepted_as_its_platform(registry: str) -> None:
    client = RegistryClient(registry)
    _, _ = push_two_platform_index(registry, "attest/img", "one")
    amd64 = client.get_manifest("attest/img", "one-amd64")
    arm64 = client.get_manifest("attest/img", "one-arm64")
    assert amd64 is not None and arm64 is not None
    # An attestation manifest is any manifest; here the arm64 one stands in, marked as an attestation.
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64.digest, "size": len(amd64.body),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {**ATTESTATION, "digest": arm64.digest, "size": len(arm64.body)}]}
    pushed = client.put_manifest("attest/img", "pushed", json.dumps(index).encode(), OCI_INDEX)

    entry = multiarch.check_entry(client, "attest/img", "linux/amd64", pushed)
    assert entry.digest == amd64.digest and entry.platform == "linux/amd64"
    with pytest.raises(RegistryError, match="is linux/amd64, not linux/arm64"):
        multiarch.check_entry(client, "attest/img", "linux/arm64", pushed)
    assert multiarch.platform_digest(client, "attest/img", "pushed", "linux/amd64") == amd64.digest
    assert multiarch.platform_digest(client, "attest/img", "pushed", "linux/arm64") is None
    # And an index of such pushes lists the images only.
    digest = multiarch.publish_index(client, "attest/img", ["merged"], [entry])
    merged = client.get_manifest("attest/img", digest)
    assert merged is not None
    assert [m["digest"] for m in json.loads(merged.body)["manifests"]] == [amd64.digest]
