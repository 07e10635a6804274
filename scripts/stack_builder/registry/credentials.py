"""Registry credentials from the environment or the Docker config file; never printed."""
from __future__ import annotations

import base64
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from stack_builder import secrets
# Re-exported: the process's secrets live in stack_builder.secrets; these names are imported from here too.
from stack_builder.secrets import (FD_VAR, PASSWORD_VAR, SECRET_VARS, SIGNING_PASSWORD_VAR, USER_VAR,
                                   RedactingFilter, redact, redact_all, without_secrets)
from stack_builder.settings import RegistrySettings, Settings, SigningSettings, environment

__all__ = ["Credentials", "FD_VAR", "PASSWORD_VAR", "RedactingFilter", "SECRET_VARS", "SIGNING_PASSWORD_VAR",
           "USER_VAR", "all_secrets", "credentials_for", "declare_secrets", "find_credentials", "hand_over",
           "must_hand_over", "receive", "redact", "redact_all", "remember_secret", "secret_values",
           "signing_password", "without_secrets"]

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "environment"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***, source={self.source!r})"

    def auth_config(self) -> dict[str, str]:
        """The docker SDK's auth_config for a push."""
        return {"username": self.username, "password": self.password}


def must_hand_over(env: Mapping[str, str]) -> bool:
    """True when a secret is in the environment that children must not be able to read from their parent."""
    return bool(env.get(PASSWORD_VAR) or env.get(SIGNING_PASSWORD_VAR))


def signing_password(env: Mapping[str, str] | None = None) -> str | None:
    """The cosign key's password: from the environment, or handed over by ``hand_over``."""
    return SigningSettings.from_env(env).password or None


def hand_over(argv: list[str], env: Mapping[str, str], *, module: str = "stack_builder.apps.cli") -> None:
    """Start this program again (``python -P -m module argv``) without the secrets in its environment: they
    come through an unnamed in-memory file instead, whatever their size.

    /proc/<pid>/environ shows a process's environment as it was started, whatever it removes later, so
    an image test (a child) could read them from its parent. After this, the parent never had them.
    ``-P``: the folder it runs in (a stack's checkout, which any pull request can change) is not on
    ``sys.path``, so no ``json.py`` there runs before the payload is read.
    """
    payload = json.dumps({"user": env.get(USER_VAR, ""), "password": env.get(PASSWORD_VAR, ""),
                          "signing": env.get(SIGNING_PASSWORD_VAR, "")}).encode()
    fd = _payload_file(payload)
    clean = {k: v for k, v in env.items() if k not in (USER_VAR, PASSWORD_VAR, SIGNING_PASSWORD_VAR)}
    clean[FD_VAR] = str(fd)
    os.execve(sys.executable, [sys.executable, "-P", "-m", module, *argv], clean)


def _payload_file(payload: bytes) -> int:
    """An inheritable descriptor of a file that holds ``payload``, read from its start and named nowhere on
    disk: a memfd (Linux), else an unlinked temporary file. A file, not a pipe: writing never blocks."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("stack-credentials")
    else:  # pragma: no cover - other systems
        fd = os.dup(tempfile.TemporaryFile().fileno())
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def receive(env: Mapping[str, str]) -> None:
    """Read the credentials handed over by ``hand_over`` (once, at start-up), if ``env`` names their pipe.

    The variable stays in this process's environment (nothing here changes it): children get environments
    without it (``secrets.without_secrets``), and a pipe already read is not read again."""
    fd = env.get(FD_VAR, "")
    if not fd.isdigit() or int(fd) in _READ:
        return
    _READ.add(int(fd))
    chunks = []
    try:
        while chunk := os.read(int(fd), 65536):
            chunks.append(chunk)
        os.close(int(fd))
    except OSError as exc:  # inherited by a process that was not handed the pipe itself
        LOGGER.debug("no credentials pipe at fd %s (%s)", fd, type(exc).__name__)
        return
    data = json.loads(b"".join(chunks) or b"{}")
    # The secrets are redacted from now on, even a password that came without a user.
    secrets.receive_handed({USER_VAR: data.get("user", ""), PASSWORD_VAR: data.get("password", ""),
                            SIGNING_PASSWORD_VAR: data.get("signing", "")})


_READ: set[int] = set()  # the pipes read already


def find_credentials(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Environment first (STACK_REGISTRY_USER / STACK_REGISTRY_PASSWORD, or handed over by `stack-builder`),
    then the Docker config file."""
    return credentials_for(registry, RegistrySettings.from_env(env))


def credentials_for(registry: str, settings: RegistrySettings) -> Credentials | None:
    """The credentials ``settings`` give (user and password both set), else the Docker config file's."""
    if settings.user and settings.password:
        return Credentials(settings.user, settings.password, "environment")
    if bool(settings.user) != bool(settings.password):
        LOGGER.warning("only one of %s and %s is set: ignoring both", USER_VAR, PASSWORD_VAR)
    return _from_docker_config(registry, settings.docker_config)


def _from_docker_config(registry: str, folder: Path) -> Credentials | None:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        LOGGER.warning("cannot read %s (%s): no credentials from it", path, type(exc).__name__)
        return None
    auths = config.get("auths") or {}
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys.append("https://index.docker.io/v1/")
    for key in keys:
        entry = auths.get(key) or {}
        encoded = entry.get("auth")
        if encoded:
            try:
                user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                LOGGER.warning("the auth entry for %s in %s is not valid base64: ignored", registry, path)
                return None
            secrets.remember(password)
            return Credentials(user, password, str(path))
    if config.get("credsStore") or (config.get("credHelpers") or {}).get(registry):
        LOGGER.info("%s uses a credential helper; the engine will use it for pushes", path)
    return None


def declare_secrets(variables: Iterable[str], env: Mapping[str, str] | None = None) -> None:
    """Name environment variables whose values are secrets too (a spec's build secrets)."""
    secrets.declare(variables, environment() if env is None else env)


def remember_secret(value: str) -> None:
    secrets.remember(value)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The registry password and the cosign key's password, where set (registered with ``secrets`` too)."""
    found = Settings.from_env(env)
    return [v for v in (found.registry.password, found.signing.password) if v]


def all_secrets() -> list[str]:
    """Every secret value known now: registry credentials, the spec's build secrets, a config file's password."""
    return secrets.known()
