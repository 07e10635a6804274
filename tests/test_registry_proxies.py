"""The registry client reads the environment's proxy settings once per host, and still honours them."""
from __future__ import annotations

import pytest

from stack_builder.registry.client import RegistryClient


def test_proxies_come_from_the_environment_per_host_and_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    client = RegistryClient("ghcr.io")
    assert client.session.trust_env is False  # not read again on every request
    assert client.proxies_for("https://ghcr.io/v2/x/manifests/y").get("https") == "http://proxy.example:3128"
    assert client.proxies_for("https://internal.example/token").get("https") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:1")
    assert client.proxies_for("https://ghcr.io/v2/").get("https") == "http://proxy.example:3128"  # read once
