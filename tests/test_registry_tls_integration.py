"""Registry TLS as dockerd does it, on real registries: HTTPS first, plain HTTP for a loopback one without TLS (found
with a bare handshake before the first request).

Each way of getting it wrong has its own message: nothing listening, a certificate nobody trusts,
wrong or missing credentials, and plain HTTP forced on a registry that speaks TLS.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from authregistry import basic_tls_registry
from stack_builder.errors import RegistryError
from stack_builder.registry import tls_probe
from stack_builder.registry import transport as registry_transport
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import Credentials
from stacks import MakeStack, free_port, release_port, small_stack

pytestmark = pytest.mark.integration

USER, PASSWORD = "tls-bot", "tls-canary-77c1d0"


@pytest.fixture(scope="module")
def tls_registry(registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with basic_tls_registry(registry_binary, tmp_path_factory.mktemp("tls"), USER, PASSWORD) as found:
        yield found


@pytest.fixture(autouse=True)
def no_tls_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STACK_REGISTRY_TLS", "STACK_REGISTRY_CA", "STACK_REGISTRY_INSECURE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def failure(client: RegistryClient) -> str:
    with pytest.raises(RegistryError) as raised:
        client.tags("any/repo")
    return str(raised.value)


def test_tls_with_htpasswd_on_loopback_needs_only_the_ca_and_credentials(
        tls_registry: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    host, ca = tls_registry
    monkeypatch.setenv("STACK_REGISTRY_CA", str(ca))
    client = RegistryClient(host, Credentials(USER, PASSWORD), retries=0)
    client.ping()
    assert client.base == f"https://{host}"
    assert client.tags("nothing/here") == set()


def test_the_engines_certs_d_ca_is_trusted(tls_registry: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    host, ca = tls_registry
    certs_d = tmp_path / "certs.d"
    (certs_d / host).mkdir(parents=True)
    shutil.copy(ca, certs_d / host / "ca.crt")
    monkeypatch.setattr(registry_transport, "CERTS_D", certs_d)  # /etc/docker/certs.d, in a folder of the test's
    client = RegistryClient(host, Credentials(USER, PASSWORD), retries=0)
    client.ping()
    assert client.verify == str(certs_d / host / "ca.crt")


def test_a_plain_http_loopback_registry_is_spoken_to_in_http(registry: str) -> None:
    client = RegistryClient(registry, retries=0)
    client.ping()
    assert client.base == f"http://{registry}"
    # A bare TLS handshake found that out: not one request went over HTTPS first.
    assert client.stats["requests"] == 1


def test_the_tls_probe_says_plain_http_only_when_a_server_answers_so(registry: str,
                                                                     tls_registry: tuple[str, Path]) -> None:
    assert tls_probe.speaks_plain_http(registry, 5)
    assert not tls_probe.speaks_plain_http(tls_registry[0], 5)
    port = free_port()
    try:
        assert not tls_probe.speaks_plain_http(f"127.0.0.1:{port}", 5)  # nothing listening: the request will say so
    finally:
        release_port(port)
    assert not tls_probe.speaks_plain_http("127.0.0.1:notaport", 5)


def test_an_untrusted_certificate_says_so(tls_registry: tuple[str, Path]) -> None:
    host, _ = tls_registry
    message = failure(RegistryClient(host, Credentials(USER, PASSWORD), retries=0))
    assert f"registry {host} speaks TLS, but its certificate is not trusted" in message
    assert "STACK_REGISTRY_CA" in message and f"/etc/docker/certs.d/{host}/ca.crt" in message


def test_wrong_and_missing_credentials_say_so(tls_registry: tuple[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    host, ca = tls_registry
    monkeypatch.setenv("STACK_REGISTRY_CA", str(ca))
    wrong = failure(RegistryClient(host, Credentials(USER, "not-" + PASSWORD), retries=0))
    assert f"registry {host} refused the credentials of '{USER}' (HTTP 401)" in wrong
    assert PASSWORD not in wrong
    missing = failure(RegistryClient(host, None, retries=0))
    assert f"registry {host} requires login" in missing


def test_nothing_listening_says_not_running() -> None:
    port = free_port()
    try:
        message = failure(RegistryClient(f"127.0.0.1:{port}", retries=0))
    finally:
        release_port(port)
    assert f"registry 127.0.0.1:{port} is not running or not reachable" in message


def test_plain_http_forced_on_a_tls_registry_says_it_speaks_tls(tls_registry: tuple[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = tls_registry
    monkeypatch.setenv("STACK_REGISTRY_TLS", "0")
    message = failure(RegistryClient(host, Credentials(USER, PASSWORD), retries=0))
    assert f"registry {host} speaks TLS (HTTPS)" in message and "unset STACK_REGISTRY_TLS=0" in message


def test_the_build_command_stops_with_the_message_and_no_traceback(
        tls_registry: tuple[str, Path], make_stack: MakeStack, test_base: str) -> None:
    host, _ = tls_registry
    stack = make_stack(registry=host)
    small_stack(stack, test_base, namespace="untrusted")
    stack.commit("initial")
    result = stack.doit("build", env={"STACK_REGISTRY_USER": USER, "STACK_REGISTRY_PASSWORD": PASSWORD})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "certificate is not trusted" in output and "Traceback" not in output
    assert PASSWORD not in output
    assert not (stack.root / "artifacts" / "build-report.json").exists()  # stopped before anything was built
