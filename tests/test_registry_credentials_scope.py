"""Where the registry's credentials may go, and how long a request may take: against a real registry behind a
hostile proxy (an upload Location on another host, a token service over plain HTTP, a body sent a byte a second).

Each of these failed before: Basic credentials followed the Location, the plain-HTTP realm got them, and the
dripped body held the request for as long as it lasted.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest

from faultproxy import fault_proxy, non_loopback_address, recording_server
from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import Credentials
from stack_builder.registry.transport import RegistryTransport
from stack_builder.settings import RegistrySettings

CANARY = "canary-scope-Pa55-41c7"
CREDENTIALS = Credentials("bot", CANARY)


def test_credentials_go_only_to_the_registrys_host_over_https_or_to_a_loopback_or_insecure_one() -> None:
    remote = RegistryTransport("ghcr.io", CREDENTIALS, settings=RegistrySettings())
    assert remote.auth.may_carry("https://ghcr.io/v2/x/manifests/1")
    assert not remote.auth.may_carry("http://ghcr.io/v2/x/manifests/1")  # plain HTTP
    assert not remote.auth.may_carry("https://uploads.example.com/v2/x/blobs/uploads/1")  # another host
    assert not remote.auth.may_carry("https://ghcr.io:8443/v2/")  # another port is another host
    loopback = RegistryTransport("127.0.0.1:5000", CREDENTIALS, settings=RegistrySettings())
    assert loopback.auth.may_carry("http://127.0.0.1:5000/v2/")
    assert not loopback.auth.may_carry("http://127.0.0.1:5001/v2/")
    insecure = RegistryTransport("registry.lan:5000", CREDENTIALS, settings=RegistrySettings(insecure=True))
    assert insecure.auth.may_carry("http://registry.lan:5000/v2/")
    assert not RegistryTransport("registry.lan:5000", CREDENTIALS, settings=RegistrySettings()) \
        .auth.may_carry("http://registry.lan:5000/v2/")


def test_a_token_service_gets_the_credentials_only_over_https_or_on_loopback() -> None:
    remote = RegistryTransport("ghcr.io", CREDENTIALS, settings=RegistrySettings())
    assert remote.auth.realm_may_have_credentials("https://auth.example.com/token")
    assert not remote.auth.realm_may_have_credentials("http://auth.example.com/token")
    assert not remote.auth.realm_may_have_credentials("http://ghcr.io/token")  # not insecure: HTTPS only
    assert remote.auth.realm_may_have_credentials("http://127.0.0.1:9999/token")
    insecure = RegistryTransport("registry.lan:5000", CREDENTIALS, settings=RegistrySettings(insecure=True))
    assert insecure.auth.realm_may_have_credentials("http://registry.lan/token")
    assert not insecure.auth.realm_may_have_credentials("http://elsewhere.lan/token")


def test_an_upload_location_on_another_host_gets_no_credentials(registry: str) -> None:
    with recording_server(401, headers={"WWW-Authenticate": 'Basic realm="thief"'}) as (port, seen), \
            fault_proxy(registry, lambda method, path: None, challenge='Basic realm="registry"',
                        relocate_to=f"127.0.0.1:{port}") as (proxy, _counts):
        client = RegistryClient(proxy, CREDENTIALS, retries=0)
        client.ping()  # the registry's own host got them (loopback: plain HTTP allowed)
        with pytest.raises(RegistryError, match="they are not sent there"):
            client.upload_blob("scope/repo", b"a blob that goes nowhere")
    assert seen, "the upload went to the other host"
    assert all("Authorization" not in request for request in seen), seen


def test_a_token_service_over_plain_http_gets_no_credentials(registry: str) -> None:
    address = non_loopback_address()
    with recording_server(200, b'{"token": "anonymous-token"}', bind="0.0.0.0") as (port, seen), \
            fault_proxy(registry, lambda method, path: None,
                        challenge=f'Bearer realm="http://{address}:{port}/token",service="registry"') as (proxy, _):
        client = RegistryClient(proxy, CREDENTIALS, retries=0)
        client.ping()  # with the token fetched without the credentials
    assert [request["path"].partition("?")[0] for request in seen] == ["/token"]
    assert "Authorization" not in seen[0], seen


def test_a_registry_that_drips_its_answer_fails_the_request_at_the_deadline(registry: str) -> None:
    blob = bytes(range(256)) * 16  # 4 KiB: over an hour, a byte a second
    digest = RegistryClient(registry).upload_blob("drip/repo", blob)
    outcome: dict[str, Any] = {}

    def fetch() -> None:
        try:
            outcome["blob"] = client.get_blob("drip/repo", digest)
        except RegistryError as exc:
            outcome["error"] = str(exc)

    with fault_proxy(registry, lambda method, path: "drip" if "/blobs/" in path and method == "GET" else None,
                     stall_s=1.0) as (proxy, counts):
        client = RegistryClient(proxy, retries=1, backoff=0.1, settings=RegistrySettings(timeout_s=2))
        worker = threading.Thread(target=fetch, daemon=True)
        worker.start()
        worker.join(120)  # a bound for the test itself, far above the deadlines (2 attempts of 2 s)
        assert not worker.is_alive(), "the request still hangs"
    assert "within 2 s (STACK_REGISTRY_TIMEOUT)" in outcome.get("error", ""), outcome
    assert counts.get("drip") == 2  # retried once, as a read timeout is
