"""Credentials: found in the environment or the Docker config file, and never shown."""
from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

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


def test_log_records_are_redacted(caplog) -> None:
    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactingFilter([CANARY]))
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("login with %s failed", CANARY)
    assert CANARY not in caplog.text and "***" in caplog.text


def test_child_processes_get_no_credentials() -> None:
    env = without_secrets({"STACK_REGISTRY_USER": "u", "STACK_REGISTRY_PASSWORD": CANARY, "PATH": "/bin"})
    assert env == {"PATH": "/bin"}
