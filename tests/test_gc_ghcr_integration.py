"""gc on GHCR: package versions listed and deleted through the GitHub Packages API. GHCR cannot be reached from
here, so, as for `yank`, a small local server stands in for api.github.com; behind it is a real registry, as
behind GHCR: the versions it lists are every manifest revision the registry holds (tagged or not, read from its
storage, as GHCR lists package versions), and deleting a version deletes that manifest in the registry.

What GHCR adds over a plain registry is that untagged manifests are visible: an orphan no tag reaches is deleted,
and an attestation manifest that looks untagged but refers to a kept image is kept (the failure of
snok/container-retention-policy #63).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import pytest
import requests

from stack_builder.errors import RegistryError
from stack_builder.registry import github_packages
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import Credentials
from stack_builder.registry.mediatypes import OCI_MANIFEST
from stack_builder.release import gc
from stack_builder.release.gc_rules import KeepRules
from stacks import running_registry
from synthetic_builds import NOW, Model, build

pytestmark = pytest.mark.integration
TOKEN = "ghcr-stand-in-token"


class GitHubBeforeRegistry(BaseHTTPRequestHandler):
    """api.github.com's container package versions, for the packages of one real registry."""

    registry = ""
    storage = Path()
    calls: list[tuple[str, str]] = []
    api_tags: dict[str, list[str]] = {}  # digest -> the tags GitHub says the version has (beyond the registry's)

    def _answer(self, status: int, body: object = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _package(self) -> tuple[str, str] | None:
        path = self.path.partition("?")[0]
        parts = path.strip("/").split("/")  # orgs/OWNER/packages/container/NAME/versions[/ID]
        if len(parts) < 6 or parts[0] != "orgs" or parts[2:4] != ["packages", "container"] or parts[5] != "versions":
            return None
        return f"{parts[1]}/{unquote(parts[4])}", parts[6] if len(parts) > 6 else ""

    def _versions(self, repository: str) -> list[dict[str, object]]:
        revisions = self.storage / "docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256"
        found = []
        for folder in sorted(revisions.iterdir()) if revisions.is_dir() else []:
            if not (folder / "link").is_file():
                continue  # deleted: the registry removes the link
            digest = f"sha256:{folder.name}"
            created = datetime.fromtimestamp((folder / "link").stat().st_mtime, timezone.utc)
            found.append({"id": int(folder.name[:12], 16), "name": digest,
                          "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "metadata": {"container": {"tags": self.api_tags.get(digest, [])}}})
        return found

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(("GET", self.path))
        package = self._package()
        if package is None or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(404 if package is None else 403, {"message": "no"})
        page = int(dict(p.split("=") for p in self.path.partition("?")[2].split("&") if p).get("page", "1"))
        return self._answer(200, self._versions(package[0])[(page - 1) * 100: page * 100])

    def do_DELETE(self) -> None:  # noqa: N802
        self.calls.append(("DELETE", self.path))
        package = self._package()
        if package is None or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(403, {"message": "Forbidden"})
        repository, version = package
        found = next((v for v in self._versions(repository) if str(v["id"]) == version), None)
        if found is None:
            return self._answer(404, {"message": "Not Found"})
        requests.delete(f"http://{self.registry}/v2/{repository}/manifests/{found['name']}", timeout=10
                        ).raise_for_status()
        return self._answer(204)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ghcr(registry_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryClient]:
    """A client that gc takes for GHCR's: the real registry behind it, the API stand-in in front."""
    with running_registry(registry_binary, tmp_path / "registry") as host:
        GitHubBeforeRegistry.registry, GitHubBeforeRegistry.storage = host, tmp_path / "registry" / "data"
        GitHubBeforeRegistry.calls, GitHubBeforeRegistry.api_tags = [], {}
        server = ThreadingHTTPServer(("127.0.0.1", 0), GitHubBeforeRegistry)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv(github_packages.API_VAR, f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setattr(github_packages, "is_ghcr", lambda found: found == host)
        try:
            yield RegistryClient(host, Credentials("someone", TOKEN))
        finally:
            server.shutdown()


def untagged_artifact(client: RegistryClient, repository: str, subject: str | None) -> str:
    """An artifact pushed by digest only (no tag, no referrers index lists it): what GHCR shows as untagged."""
    config = b"{}"
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.in-toto+json",
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": client.upload_blob(repository, config), "size": 2},
                       "layers": [{"mediaType": "application/vnd.in-toto+json",
                                   "digest": client.upload_blob(repository, os.urandom(64)), "size": 64}],
                       **({"subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}} if subject else {})
                       }).encode()
    return client.put_manifest(repository, "sha256:" + hashlib.sha256(body).hexdigest(), body, OCI_MANIFEST)


def test_gc_on_ghcr_deletes_unreached_versions_and_keeps_an_untagged_attestation(ghcr: RegistryClient) -> None:
    model = Model("uni/notebook")
    for days_old in (90, 80, 70):
        build(ghcr, model, "main", days_old, 2)
    newest = model.builds[-1].digest
    attestation = untagged_artifact(ghcr, model.repository, newest)
    orphan = untagged_artifact(ghcr, model.repository, None)
    oldest = model.builds[0]

    # The versions were pushed just now (their created time is the registry's own): judged an hour later.
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    plan = gc.make_plan(ghcr, [model.repository], KeepRules(builds=1, days=0, now=later), NOW.isoformat())
    planned = {d.digest for d in plan.deletions}
    assert orphan in planned and oldest.digest in planned
    assert attestation not in planned and newest not in planned
    assert plan.repositories[0].kept[attestation].startswith("a referrer of")

    deleted = gc.apply(ghcr, plan)
    assert deleted == len(planned)
    deletes = [path for method, path in GitHubBeforeRegistry.calls if method == "DELETE"]
    assert len(deletes) == len(planned) and all(p.startswith("/orgs/uni/packages/container/notebook/versions/")
                                                for p in deletes)
    assert ghcr.get_manifest(model.repository, orphan) is None
    assert ghcr.get_manifest(model.repository, oldest.digest) is None
    assert ghcr.get_manifest(model.repository, attestation) is not None
    assert ghcr.manifest_digest(model.repository, "2024.1-main") == newest
    assert gc.verify(ghcr, [model.repository]).problems == []


def test_a_version_github_says_is_tagged_is_kept_and_a_disagreement_stops_the_plan(ghcr: RegistryClient) -> None:
    """The registry's tag list and GitHub's API are two views of one package: a version the API names a tag of
    is never taken for untagged, and when the two disagree about a tag nothing is planned."""
    model = Model("uni/lab")
    for days_old in (90, 80):
        build(ghcr, model, "main", days_old, 1)
    orphan = untagged_artifact(ghcr, model.repository, None)
    GitHubBeforeRegistry.api_tags = {orphan: ["kept-by-hand"]}
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    plan = gc.make_plan(ghcr, [model.repository], KeepRules(builds=1, days=0, now=later), NOW.isoformat())
    assert orphan not in {d.digest for d in plan.deletions}
    assert plan.repositories[0].kept[orphan] == "tag kept-by-hand"
    GitHubBeforeRegistry.api_tags = {orphan: ["2024.1-main"]}  # the registry says 2024.1-main is the newest build
    with pytest.raises(RegistryError, match="uni/lab:2024.1-main: the registry serves .* GitHub's API says"):
        gc.make_plan(ghcr, [model.repository], KeepRules(builds=1, days=0, now=later), NOW.isoformat())
