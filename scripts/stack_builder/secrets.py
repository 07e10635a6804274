"""The process's secrets in one place: the variables that hold them, the values known, and redaction.

Whatever reads a secret registers its value here (``settings`` for the environment's, ``credentials``
for a Docker config file's and for those handed over through a pipe); the redacting log filter, the
report and every written file read it back. Nothing here reads the environment.

Redaction is for free text (logs, messages, error text), never for a durable fact: a digest, a commit id,
or a tag, image name or repository registered with ``keep`` is left whole even where a secret occurs
inside it (a password ``main`` must not turn ``2024.1-main`` into ``2024.1-***`` in a report, which would
also give it away). A secret under ``MIN_REDACTABLE`` characters is not redacted at all: it would match
ordinary words; a warning says it cannot be kept out of free text.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Iterable, Mapping

# The variables' names live in ``defaults`` (cheap to import); re-exported here, where they are used.
from stack_builder.defaults import FD_VAR as FD_VAR
from stack_builder.defaults import PASSWORD_VAR as PASSWORD_VAR
from stack_builder.defaults import SECRET_VARS as SECRET_VARS
from stack_builder.defaults import SIGNING_PASSWORD_VAR as SIGNING_PASSWORD_VAR
from stack_builder.defaults import USER_VAR as USER_VAR

_LOCK = threading.Lock()
_VALUES: set[str] = set()  # every secret value known to this process
_DECLARED: set[str] = set()  # variables that hold build secrets, as the loaded spec declares them
_HANDED: dict[str, str] = {}  # variable -> value, for the secrets that came through the hand-over pipe
_FACTS: set[str] = set()  # checked values that are never redacted: tags, image names, repositories, commits
_WARNED_SHORT: set[int] = set()  # hashes of the short secrets warned about already (once each)

LOGGER = logging.getLogger(__name__)
MIN_REDACTABLE = 8  # shorter secrets would match ordinary words and facts: they are not redacted, but warned of
# Facts by their shape: a digest, and a full commit id or hex digest.
FACT_SHAPES = re.compile(r"sha256:[0-9a-f]{64}|\b[0-9a-f]{64}\b|\b[0-9a-f]{40}\b", re.IGNORECASE)


def remember(*values: str) -> None:
    """Register secret values: from now on they are redacted wherever free text leaves the process (those
    under ``MIN_REDACTABLE`` characters are warned of instead)."""
    short = [v for v in values if v and len(v) < MIN_REDACTABLE]
    with _LOCK:
        _VALUES.update(v for v in values if len(v) >= MIN_REDACTABLE)
        new_short = [v for v in short if hash(v) not in _WARNED_SHORT]
        _WARNED_SHORT.update(hash(v) for v in new_short)
    for _value in new_short:
        LOGGER.warning("a secret (a password or token) is shorter than %d characters: it cannot be kept out of "
                       "logs and messages, since it would match ordinary words, so it is not redacted; use a "
                       "longer one", MIN_REDACTABLE)


def keep(*facts: str) -> None:
    """Register checked values (tags, image names, repositories, commit ids): never redacted."""
    with _LOCK:
        _FACTS.update(f for f in facts if f)


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
    """``text`` with every secret replaced by ***, whatever its case (an engine may upper-case what it quotes),
    except inside a fact (``keep``, ``FACT_SHAPES``), and except secrets too short to redact."""
    lowered = text.lower()
    present = sorted({s for s in secrets if len(s) >= MIN_REDACTABLE and s.lower() in lowered}, key=len, reverse=True)
    if not present:
        return text
    kept = _fact_spans(text, lowered)
    pattern = re.compile("|".join(re.escape(s) for s in present), re.IGNORECASE)
    return pattern.sub(lambda m: m.group(0) if any(a <= m.start() and m.end() <= b for a, b in kept) else "***",
                       text)


def _fact_spans(text: str, lowered: str) -> list[tuple[int, int]]:
    """Where facts occur in ``text``: registered ones, and digests and commit ids by their shape."""
    spans = [m.span() for m in FACT_SHAPES.finditer(text)]
    with _LOCK:
        facts = [f.lower() for f in _FACTS]
    for fact in facts:
        start = lowered.find(fact)
        while start >= 0:
            spans.append((start, start + len(fact)))
            start = lowered.find(fact, start + 1)
    return spans


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
