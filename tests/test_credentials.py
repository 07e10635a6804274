"""Credentials: found in the environment or the Docker config file, and never shown."""
from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from stack_builder.registry.credentials import RedactingFilter, find_credentials, without_secrets

CANARY = "canary-Pa55w0rd-7f3a"


def test_environment_wins(tmp_path: Path) -> None:
    env = {"STACK_REGISTRY_USER": "bot", "STACK_REGISTRY_PASSWORD": CANARY, "HOME": str(tmp_path)}
    found = find_credentials("ghcr.io", env)
    assert found is not None and found.username == "bot" and found.password == CANARY
    assert CANARY not in repr(found) and CANARY not in str(found)


def test_docker_config_file(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    auth = base64.b64encode(f"me:{CANARY}".encode()).decode()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    found = find_credentials("ghcr.io", {"HOME": str(tmp_path)})
    assert found is not None and (found.username, found.password) == ("me", CANARY)
    assert find_credentials("docker.io", {"HOME": str(tmp_path)}) is None


def test_half_set_environment_is_ignored(tmp_path: Path) -> None:
    assert find_credentials("ghcr.io", {"STACK_REGISTRY_USER": "bot", "HOME": str(tmp_path)}) is None


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactingFilter([CANARY]))
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("login with %s failed", CANARY)
    assert CANARY not in caplog.text and "***" in caplog.text


def test_child_processes_get_no_credentials() -> None:
    env = without_secrets({"STACK_REGISTRY_USER": "u", "STACK_REGISTRY_PASSWORD": CANARY, "PATH": "/bin"})
    assert env == {"PATH": "/bin"}


def test_settings_read_the_registry_credentials_and_register_the_password(tmp_path: Path) -> None:
    from stack_builder import secrets
    from stack_builder.settings import Settings

    password = "canary-settings-1d2e"
    settings = Settings.from_env({"STACK_REGISTRY_USER": "bot", "STACK_REGISTRY_PASSWORD": password,
                                  "STACK_REGISTRY_TLS": "0", "STACK_REGISTRY_TIMEOUT": "7", "HOME": str(tmp_path)})
    assert (settings.registry.user, settings.registry.tls, settings.registry.timeout_s) == ("bot", "0", 7.0)
    assert settings.registry.docker_config == tmp_path / ".docker"
    assert password not in repr(settings)
    assert secrets.redact_all(f"login {password}") == "login ***"  # registered as it was read


def test_a_spec_build_secret_is_redacted_and_kept_from_children() -> None:
    from stack_builder import secrets

    value = "canary-build-secret-88aa"
    secrets.declare(["STACK_TEST_TOKEN_FOR_CREDENTIALS"], {"STACK_TEST_TOKEN_FOR_CREDENTIALS": value})
    assert value not in secrets.redact_all(f"pip said {value.upper()}")
    env = {"STACK_TEST_TOKEN_FOR_CREDENTIALS": value, "STACK_CREDENTIALS_FD": "5", "PATH": "/bin"}
    assert secrets.without_secrets(env) == {"PATH": "/bin"}
    assert secrets.without_secrets(env, keep_build_secrets=True) == {"STACK_TEST_TOKEN_FOR_CREDENTIALS": value,
                                                                      "PATH": "/bin"}


def test_handed_over_credentials_are_found_without_changing_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from stack_builder import secrets
    from stack_builder.registry import credentials

    monkeypatch.setattr(secrets, "_HANDED", {})  # this process's hand-over, for this test only
    password = "canary-handed-42ff"
    read_end, write_end = os.pipe()
    os.write(write_end, json.dumps({"user": "piped", "password": password, "signing": ""}).encode())
    os.close(write_end)
    before = dict(os.environ)
    credentials.receive({"STACK_CREDENTIALS_FD": str(read_end)})
    assert dict(os.environ) == before
    found = find_credentials("ghcr.io", {"HOME": str(tmp_path)})
    assert found is not None and (found.username, found.password) == ("piped", password)
    assert secrets.redact_all(password) == "***"
    credentials.receive({"STACK_CREDENTIALS_FD": str(read_end)})  # read once: a second call reads nothing


def test_the_config_builds_the_registry_client_from_its_settings(tmp_path: Path) -> None:
    from stack_builder.config import Config
    from stack_builder.settings import Settings
    from stack_builder.spec.stack_spec import Spec

    (tmp_path / "ca.crt").write_text("a CA certificate\n")  # (a missing one is an error)
    settings = Settings.from_env({"STACK_REGISTRY_CA": str(tmp_path / "ca.crt"), "STACK_REGISTRY_TLS": "1",
                                  "STACK_REGISTRY_USER": "bot", "STACK_REGISTRY_PASSWORD": CANARY,
                                  "HOME": str(tmp_path)})
    spec = Spec.__new__(Spec)  # the client needs no spec
    client = Config(stack_dir=tmp_path, spec=spec, registry="127.0.0.1:5999", settings=settings).registry_client()
    assert client.base == "https://127.0.0.1:5999" and client.verify == str(tmp_path / "ca.crt")
    assert client.credentials is not None and client.credentials.username == "bot"
    assert client.settings is settings.registry


def test_signing_comes_from_the_settings(tmp_path: Path) -> None:
    from stack_builder.errors import StackError
    from stack_builder.registry.signing import Signing
    from stack_builder.settings import Settings

    assert Signing.from_settings(Settings.from_env({})) is None
    key = tmp_path / "cosign.key"
    key.write_text("key")
    signing = Signing.from_settings(Settings.from_env({"STACK_SIGNING_KEY": str(key), "COSIGN_PASSWORD": CANARY}))
    assert signing is not None and signing.key == key and signing.password == CANARY and CANARY not in repr(signing)
    with pytest.raises(StackError, match="STACK_SIGNING=keyless needs STACK_SIGNING_IDENTITY"):
        Signing.from_settings(Settings.from_env({"STACK_SIGNING": "keyless"}))


def test_the_run_id_reaches_children_without_changing_the_environment() -> None:
    import os

    from stack_builder.engine import containers
    from stack_builder.settings import EngineSettings

    before = dict(os.environ)
    with containers.run_labelled("run-1234"):
        assert dict(os.environ) == before
        assert containers.run_env() == {"STACK_RUN_ID": "run-1234"}
        labels = containers.run_labels(EngineSettings(image_name="root", platform="linux/amd64"))
        assert labels == {containers.RUN_LABEL: "run-1234", containers.IMAGE_LABEL: "root",
                          containers.PLATFORM_LABEL: "linux/amd64"}
    assert containers.run_env() == {}
    assert containers.run_labels(EngineSettings(run_id="parent-run")) == {containers.RUN_LABEL: "parent-run"}
    assert containers.timeout_s(300, EngineSettings(container_timeout_s=5)) == 5
    assert containers.timeout_s(3, EngineSettings(container_timeout_s=5)) == 3


def test_redaction_leaves_facts_whole_and_free_text_redacted(caplog: pytest.LogCaptureFixture) -> None:
    from stack_builder import secrets

    secret = "deadbeef" * 2  # 16 characters, hex: the shape of a part of a digest
    digest = "sha256:" + "0" * 8 + secret + "1" * 40
    secrets.keep("2024.1-feature-Secret-Tag-9x")
    text = f"pushed {digest} as 2024.1-feature-Secret-Tag-9x; password {secret}, and Secret-Tag-9x in a message"
    redacted = secrets.redact(text, [secret, "Secret-Tag-9x"])
    assert digest in redacted and "2024.1-feature-Secret-Tag-9x" in redacted  # facts: whole
    assert redacted.endswith("password ***, and *** in a message")  # free text: redacted
    with caplog.at_level(logging.WARNING):
        secrets.remember("pw12")
    assert "shorter than 8 characters" in caplog.text and "pw12" not in caplog.text
    assert secrets.redact("branch pw12", secrets.known()) == "branch pw12"  # too short to redact: warned of instead
