"""The promotion history on a real registry: a move is one manifest written (the list is its annotation, no
blob uploaded), and a history in 0.2's form (the list in a layer blob) is read, then carried on in the new form."""
from __future__ import annotations

import json

import pytest

from stack_builder.errors import RegistryError
from stack_builder.records import promotions
from stack_builder.records.runs import RunKind
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import HISTORY_ARTIFACT, OCI_EMPTY, OCI_MANIFEST

pytestmark = pytest.mark.integration


def entry(id: str, after: str, before: str | None = None) -> promotions.Entry:
    return promotions.Entry(id=id, kind=RunKind.PROMOTION, time="2026-12-05T18:00:00Z", by="me",
                            source="2024.1-main", before=before, after=after, stamp=len(id))


def write_in_the_old_form(client: RegistryClient, repository: str, target: str, entries: list[promotions.Entry]) -> None:
    """What stack-builder 0.2 wrote: the list as the artifact's one layer blob."""
    payload = json.dumps({"target": target, "entries": [{**e.__dict__, "kind": e.kind.value} for e in entries]}).encode()
    config = client.upload_blob(repository, b"{}")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": HISTORY_ARTIFACT,
                "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
                "layers": [{"mediaType": HISTORY_ARTIFACT, "digest": client.upload_blob(repository, payload),
                            "size": len(payload)}]}
    client.put_manifest(repository, promotions.history_tag(target), json.dumps(manifest).encode(), OCI_MANIFEST)


def test_a_move_is_one_manifest_and_a_history_of_0_2_is_carried_on(registry: str) -> None:
    client = RegistryClient(registry)
    repository = "history/old"
    write_in_the_old_form(client, repository, "stable", [entry("a1", "sha256:" + "1" * 64)])
    assert promotions.read(client, repository, "stable") == [entry("a1", "sha256:" + "1" * 64)]

    before = dict(client.stats)
    promotions.append(client, repository, "stable", entry("b22", "sha256:" + "2" * 64, "sha256:" + "1" * 64))
    # read the history (its manifest and 0.2's blob), the empty blob asked for, one manifest written
    assert client.stats["requests"] - before["requests"] == 4
    stored = json.loads(client.get_manifest(repository, "promotions.stable").body)  # type: ignore[union-attr]
    empty = {"mediaType": OCI_EMPTY, "digest": stored["config"]["digest"], "size": 2}
    assert stored["layers"] == [empty] and stored["artifactType"] == HISTORY_ARTIFACT
    assert json.loads(stored["annotations"][promotions.HISTORY_ANNOTATION])["target"] == "stable"
    assert promotions.read(client, repository, "stable") == [entry("a1", "sha256:" + "1" * 64),
                                                             entry("b22", "sha256:" + "2" * 64, "sha256:" + "1" * 64)]
    assert [e.id for e in promotions.read(client, repository, "2024.1-stable")] == []

    # On a history in the new form: the history read, the empty blob asked for, one manifest written; no upload.
    before = dict(client.stats)
    promotions.append(client, repository, "stable", entry("c333", "sha256:" + "3" * 64, "sha256:" + "2" * 64))
    assert client.stats["requests"] - before["requests"] == 3
    assert [e.id for e in promotions.read(client, repository, "stable")] == ["a1", "b22", "c333"]


def test_an_unreadable_history_is_a_clear_error(registry: str) -> None:
    client = RegistryClient(registry)
    empty = {"mediaType": OCI_EMPTY, "digest": client.upload_blob("history/bad", b"{}"), "size": 2}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": HISTORY_ARTIFACT, "config": empty,
                "layers": [empty], "annotations": {promotions.HISTORY_ANNOTATION: "not json"}}
    client.put_manifest("history/bad", "promotions.stable", json.dumps(manifest).encode(), OCI_MANIFEST)
    with pytest.raises(RegistryError, match=r"promotion history history/bad:promotions.stable is unreadable"):
        promotions.read(client, "history/bad", "stable")
