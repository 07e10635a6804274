"""Registry credentials from the environment or the Docker config file; never printed."""
from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

LOGGER = logging.getLogger(__name__)

USER_VAR = "STACK_REGISTRY_USER"
PASSWORD_VAR = "STACK_REGISTRY_PASSWORD"
SECRET_VARS = (PASSWORD_VAR,)


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


def find_credentials(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Environment first (STACK_REGISTRY_USER / STACK_REGISTRY_PASSWORD), then the Docker config file."""
    env = os.environ if env is None else env
    user, password = env.get(USER_VAR), env.get(PASSWORD_VAR)
    if user and password:
        return Credentials(user, password, "environment")
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
        message = record.getMessage()
        redacted = redact(message, [*self.secrets, *(os.environ.get(v, "") for v in sorted(_BUILD_SECRET_VARS))])
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    return [env[v] for v in SECRET_VARS if env.get(v)]


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` for child processes that need no registry credentials."""
    return {k: v for k, v in env.items() if k not in (USER_VAR, *SECRET_VARS, *_BUILD_SECRET_VARS)}
