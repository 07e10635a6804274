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
    # A real attestation manifest (in-toto layers only), whose subject is the amd64 image.
    attestation = real_attestation(client, "attest/img")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64.digest, "size": len(amd64.body),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {**ATTESTATION, "digest": attestation, "size": 10,
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": amd64.digest}}]}
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


def real_attestation(client: RegistryClient, repository: str) -> str:
    """An attestation manifest as BuildKit writes one: an in-toto statement as its only layer."""
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "x", "subject": []}).encode()
    config = b"{}"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": client.upload_blob(repository, config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.in-toto+json",
                                       "digest": client.upload_blob(repository, statement),
                                       "size": len(statement)}]}).encode()
    return client.put_manifest(repository, "attestation", manifest, OCI_MANIFEST)


@pytest.mark.integration
def test_an_image_hidden_as_an_attestation_entry_is_refused(registry: str) -> None:
    client = RegistryClient(registry)
    _, _ = push_two_platform_index(registry, "hidden/img", "one")
    amd64 = client.get_manifest("hidden/img", "one-amd64")
    arm64 = client.get_manifest("hidden/img", "one-arm64")
    assert amd64 is not None and arm64 is not None
    runnable = {**ATTESTATION, "digest": arm64.digest, "size": len(arm64.body),
                "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": amd64.digest}}
    orphan = {**ATTESTATION, "digest": real_attestation(client, "hidden/img"), "size": 10}  # subject elsewhere
    image = {"mediaType": OCI_MANIFEST, "digest": amd64.digest, "size": len(amd64.body),
             "platform": {"architecture": "amd64", "os": "linux"}}
    for hidden, why in ((runnable, "is marked as an attestation but is not one"),
                        (orphan, "is not an image of the same index")):
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [image, hidden]}
        pushed = client.put_manifest("hidden/img", "pushed", json.dumps(index).encode(), OCI_INDEX)
        assert any(why in p for p in multiarch.attestation_problems(client, "hidden/img", index))
        with pytest.raises(RegistryError, match=why):
            multiarch.check_entry(client, "hidden/img", "linux/amd64", pushed)
