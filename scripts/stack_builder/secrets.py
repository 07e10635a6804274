"""The process's secrets in one place: the variables that hold them, the values known, and redaction.

Whatever reads a secret registers its value here (``settings`` for the environment's, ``credentials``
for a Docker config file's and for those handed over through a pipe); the redacting log filter, the
report and every written file read it back. Nothing here reads the environment.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Iterable, Mapping

USER_VAR = "STACK_REGISTRY_USER"
PASSWORD_VAR = "STACK_REGISTRY_PASSWORD"
SIGNING_PASSWORD_VAR = "COSIGN_PASSWORD"  # the password of the cosign key in STACK_SIGNING_KEY
SECRET_VARS = (PASSWORD_VAR, SIGNING_PASSWORD_VAR)
FD_VAR = "STACK_CREDENTIALS_FD"  # the pipe the credentials come through after `stack-builder` re-executes itself

_LOCK = threading.Lock()
_VALUES: set[str] = set()  # every secret value known to this process
_DECLARED: set[str] = set()  # variables that hold build secrets, as the loaded spec declares them
_HANDED: dict[str, str] = {}  # variable -> value, for the secrets that came through the hand-over pipe


def remember(*values: str) -> None:
    """Register secret values: from now on they are redacted wherever text leaves the process."""
    with _LOCK:
        _VALUES.update(v for v in values if v)


def declare(variables: Iterable[str], environment: Mapping[str, str]) -> None:
    """Name variables whose values are secrets too (a spec's build secrets): their values in ``environment``
    are redacted, and the variables are kept from child processes that need no secrets."""
    names = set(variables)
    with _LOCK:
        _DECLARED.update(names)
    remember(*(environment.get(name, "") for name in names))


def declared() -> frozenset[str]:
    with _LOCK:
        return frozenset(_DECLARED)


def receive_handed(values: Mapping[str, str]) -> None:
    """Keep what was handed over (variable -> value); the secrets among them are redacted from now on (the
    user name is not a secret: an error names it)."""
    with _LOCK:
        _HANDED.update({k: v for k, v in values.items() if v})
    remember(*(value for name, value in values.items() if name in SECRET_VARS))


def handed(variable: str) -> str:
    """The value of ``variable`` as handed over through the pipe, or ""."""
    with _LOCK:
        return _HANDED.get(variable, "")


def known() -> list[str]:
    """Every secret value registered so far."""
    with _LOCK:
        return sorted(_VALUES)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ***, whatever its case (an engine may upper-case what it quotes)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if secret.lower() in text.lower():
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text


def redact_all(text: str) -> str:
    """``text`` with every known secret redacted."""
    return redact(text, known())


def without_secrets(env: Mapping[str, str], *, keep_build_secrets: bool = False) -> dict[str, str]:
    """A copy of ``env`` for a child process: no registry credentials, no cosign password, no hand-over pipe,
    and (unless ``keep_build_secrets``: a build reads them itself) no build secrets."""
    dropped = {USER_VAR, FD_VAR, *SECRET_VARS, *(() if keep_build_secrets else declared())}
    return {k: v for k, v in env.items() if k not in dropped}


class RedactingFilter(logging.Filter):
    """Replaces secret values in every log record: the given ones, and the registered ones as they are now."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [*self.secrets, *known()]
        message = record.getMessage()
        redacted = redact(message, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:  # a traceback can quote a secret too: format it here, redacted
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
            record.exc_info = None
        return True
