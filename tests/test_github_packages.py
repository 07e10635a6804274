"""GHCR deletes through the GitHub Packages API. GHCR itself cannot be reached from here, so a small local
HTTP server stands in for api.github.com, answering as its documentation says; what is checked is what
we send (paths, the token, the version found by digest) and how each answer is read."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from stack_builder.errors import RegistryError
from stack_builder.registry import github_packages

DIGEST = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64


class FakeGitHub(BaseHTTPRequestHandler):
    packages: dict[str, list[dict[str, Any]]] = {}  # path of the versions list -> versions
    calls: list[tuple[str, str, str]] = []

    def _answer(self, status: int, body: object = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(("GET", self.path, self.headers.get("Authorization", "")))
        path, _, query = self.path.partition("?")
        if path not in self.packages:
            return self._answer(404, {"message": "Not Found"})
        page = int(dict(p.split("=") for p in query.split("&")).get("page", "1"))
        versions = self.packages[path]
        return self._answer(200, versions[(page - 1) * 100: page * 100])

    def do_DELETE(self) -> None:  # noqa: N802
        self.calls.append(("DELETE", self.path, self.headers.get("Authorization", "")))
        listed, _, version = self.path.rpartition("/")
        versions = self.packages.get(listed, [])
        if self.headers.get("Authorization") != "Bearer good-token":
            return self._answer(403, {"message": "Forbidden"})
        if not any(str(v["id"]) == version for v in versions):
            return self._answer(404, {"message": "Not Found"})
        self.packages[listed] = [v for v in versions if str(v["id"]) != version]
        return self._answer(204)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeGitHub]]:
    FakeGitHub.packages, FakeGitHub.calls = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(github_packages.API_VAR, f"http://127.0.0.1:{server.server_address[1]}")
    yield FakeGitHub
    server.shutdown()


def test_the_version_named_by_the_digest_is_deleted_for_a_user_owned_package(github: type[FakeGitHub]) -> None:
    listed = "/users/someone/packages/container/team%2Fnotebook/versions"  # a nested name is one package name
    github.packages[listed] = [{"id": n, "name": OTHER} for n in range(150)] + [{"id": 999, "name": DIGEST}]
    assert github_packages.delete_version("someone/team/notebook", DIGEST, "good-token") is True
    assert [v["id"] for v in github.packages[listed] if v["name"] == DIGEST] == []
    assert len(github.packages[listed]) == 150  # only that version
    assert github.calls[0][1].startswith("/orgs/someone/")  # an organisation is tried first, then the user
    assert ("DELETE", f"{listed}/999", "Bearer good-token") in github.calls


def test_a_missing_version_a_missing_package_and_a_refused_token_are_told_apart(github: type[FakeGitHub]) -> None:
    listed = "/orgs/uni/packages/container/base-notebook/versions"
    github.packages[listed] = [{"id": 1, "name": OTHER}]
    assert github_packages.delete_version("uni/base-notebook", DIGEST, "good-token") is False
    with pytest.raises(RegistryError, match="no container package uni/other"):
        github_packages.delete_version("uni/other", DIGEST, "good-token")
    github.packages[listed].append({"id": 2, "name": DIGEST})
    with pytest.raises(RegistryError, match="HTTP 403.*packages: write"):
        github_packages.delete_version("uni/base-notebook", DIGEST, "bad-token")
    assert github_packages.is_ghcr("GHCR.io") and not github_packages.is_ghcr("127.0.0.1:5000")
