"""Registry credentials from the environment or the Docker config file; never printed."""
from __future__ import annotations

import base64
import json
import logging
import os
import sys
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

LOGGER = logging.getLogger(__name__)

USER_VAR = "STACK_REGISTRY_USER"
PASSWORD_VAR = "STACK_REGISTRY_PASSWORD"
SIGNING_PASSWORD_VAR = "COSIGN_PASSWORD"  # the password of the cosign key in STACK_SIGNING_KEY
SECRET_VARS = (PASSWORD_VAR, SIGNING_PASSWORD_VAR)


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


FD_VAR = "STACK_CREDENTIALS_FD"  # the pipe the credentials come through after `stack-builder` re-executes itself
_HANDED: list[Credentials] = []  # the credentials that came through that pipe
_HANDED_SIGNING: list[str] = []  # the signing key's password, when it came through that pipe


def must_hand_over(env: Mapping[str, str]) -> bool:
    """True when a secret is in the environment that children must not be able to read from their parent."""
    return bool(env.get(PASSWORD_VAR) or env.get(SIGNING_PASSWORD_VAR))


def signing_password(env: Mapping[str, str] | None = None) -> str | None:
    """The cosign key's password: from the environment, or handed over by ``hand_over``."""
    env = os.environ if env is None else env
    return env.get(SIGNING_PASSWORD_VAR) or (_HANDED_SIGNING[0] if _HANDED_SIGNING else None)


def hand_over(argv: list[str], env: Mapping[str, str]) -> None:
    """Start this program again without the registry credentials in its environment: they go through a pipe.

    /proc/<pid>/environ shows a process's environment as it was started, whatever it removes later, so
    an image test (a child) could read them from its parent. After this, the parent never had them.
    """
    read_end, write_end = os.pipe()
    payload = json.dumps({"user": env.get(USER_VAR, ""), "password": env.get(PASSWORD_VAR, ""),
                          "signing": env.get(SIGNING_PASSWORD_VAR, "")}).encode()
    os.write(write_end, payload)  # far below a pipe's buffer: never blocks
    os.close(write_end)
    os.set_inheritable(read_end, True)
    clean = {k: v for k, v in env.items() if k not in (USER_VAR, PASSWORD_VAR, SIGNING_PASSWORD_VAR)}
    clean[FD_VAR] = str(read_end)
    os.execve(sys.executable, [sys.executable, "-m", "stack_builder.apps.cli", *argv], clean)


def receive() -> None:
    """Read the credentials handed over by ``hand_over`` (once, at start-up), if there are any."""
    fd = os.environ.pop(FD_VAR, "")
    if not fd.isdigit():
        return
    chunks = []
    while chunk := os.read(int(fd), 65536):
        chunks.append(chunk)
    os.close(int(fd))
    data = json.loads(b"".join(chunks) or b"{}")
    remember_secret(data.get("password", ""))  # redacted even when it came without a user
    if data.get("signing"):
        remember_secret(data["signing"])
        _HANDED_SIGNING[:] = [data["signing"]]
    if data.get("user") and data.get("password"):
        _HANDED[:] = [Credentials(data["user"], data["password"], "environment")]


def find_credentials(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Environment first (STACK_REGISTRY_USER / STACK_REGISTRY_PASSWORD, or handed over by `stack-builder`),
    then the Docker config file."""
    env = os.environ if env is None else env
    user, password = env.get(USER_VAR), env.get(PASSWORD_VAR)
    if user and password:
        return Credentials(user, password, "environment")
    if _HANDED and not user and not password:
        return _HANDED[0]
    if bool(user) != bool(password):
        LOGGER.warning("only one of %s and %s is set: ignoring both", USER_VAR, PASSWORD_VAR)
    return _from_docker_config(registry, env)


def _from_docker_config(registry: str, env: Mapping[str, str]) -> Credentials | None:
    folder = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME", "~")).expanduser() / ".docker")
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
            remember_secret(password)
            return Credentials(user, password, str(path))
    if config.get("credsStore") or (config.get("credHelpers") or {}).get(registry):
        LOGGER.info("%s uses a credential helper; the engine will use it for pushes", path)
    return None


# Environment variables that hold build secrets, as the loaded spec declares them (see declare_secrets).
_BUILD_SECRET_VARS: set[str] = set()


def declare_secrets(variables: Iterable[str]) -> None:
    """Name environment variables whose values are secrets too (a spec's build secrets): from now on
    they are redacted from the log and kept from child processes that need no secrets."""
    _BUILD_SECRET_VARS.update(variables)


class RedactingFilter(logging.Filter):
    """Replaces known secret values in every log record: the given ones, and the declared ones as they are now."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [*self.secrets, *all_secrets()]
        message = record.getMessage()
        redacted = redact(message, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:  # a traceback can quote a secret too: format it here, redacted
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
            record.exc_info = None
        return True


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ***, whatever its case (an engine may upper-case what it quotes)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if secret.lower() in text.lower():
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text


_REMEMBERED: set[str] = set()  # secrets found outside the environment (a Docker config file's password)


def remember_secret(value: str) -> None:
    if value:
        _REMEMBERED.add(value)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    return [env[v] for v in SECRET_VARS if env.get(v)]


def all_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value known now: registry credentials, the spec's build secrets, a config file's password."""
    env = os.environ if env is None else env
    return [*secret_values(env), *(env.get(v, "") for v in sorted(_BUILD_SECRET_VARS)), *_REMEMBERED]


def redact_all(text: str) -> str:
    return redact(text, all_secrets())


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` for child processes that need no registry credentials."""
    return {k: v for k, v in env.items() if k not in (USER_VAR, *SECRET_VARS, *_BUILD_SECRET_VARS)}
