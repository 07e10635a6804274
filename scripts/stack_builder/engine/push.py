"""Push an image through the engine, under the one retry policy.

The engine reports a failed push only as text in its stream. One function reads that text for
the two facts the retry policy needs: the registry's HTTP status, and whether the connection
failed. A denial (401/403) or any other error fails at once.
"""
from __future__ import annotations

import logging
import re
from typing import IO

import docker

from stack_builder.engine.client import ENGINE_FAILURES
from stack_builder.errors import StepFailed, Transient
from stack_builder.retry import RetryPolicy

LOGGER = logging.getLogger(__name__)

STATUS_RE = re.compile(r"\b(?:status|HTTP)[: ]+(\d{3})\b", re.I)
# How Go's net/http and the engine word a connection that failed before any status came back.
NETWORK_FAILURE_RE = re.compile(r"connection (?:reset|refused)|broken pipe|\bEOF\b|i/o timeout|"
                                r"timeout awaiting|TLS handshake timeout|unexpected end of JSON", re.I)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(message: str) -> bool:
    """Whether a push error from the engine may pass when tried again."""
    status = STATUS_RE.search(message)
    if status is not None:
        return int(status.group(1)) in TRANSIENT_STATUS
    if re.search(r"unauthori[sz]ed|denied|forbidden", message, re.I):
        return False
    return NETWORK_FAILURE_RE.search(message) is not None


def push(client: docker.DockerClient, repository: str, tag: str, *, auth: dict[str, str] | None, log: IO[str],
         policy: RetryPolicy) -> str:
    """Push ``repository:tag`` and return the digest the engine reports."""
    def retrying(number: int, delay: float, reason: str) -> None:
        log.write(f"transient push failure, retry {number} in {delay:.1f}s: {reason}\n")

    return policy.run(lambda: _push_once(client, repository, tag, auth, log), what=f"push of {repository}:{tag}",
                      on_retry=retrying)


def _push_once(client: docker.DockerClient, repository: str, tag: str, auth: dict[str, str] | None,
               log: IO[str]) -> str:
    digest = None
    log.write(f"== push {repository}:{tag}\n")
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:
                message = str(chunk.get("error") or (chunk.get("errorDetail") or {}).get("message"))
                log.write(f"ERROR: {message}\n")
                _fail(f"push of {repository}:{tag} failed: {message}", message)
            if chunk.get("status") and not chunk.get("progressDetail"):
                log.write(f"{chunk.get('id', '')} {chunk['status']}\n".lstrip())
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
    except ENGINE_FAILURES as exc:
        message = f"push of {repository}:{tag} failed: {type(exc).__name__}: {exc}"
        _fail(message, str(exc))
    if digest is None:
        raise StepFailed(f"push of {repository}:{tag} reported no digest")
    return digest


def _fail(message: str, engine_text: str) -> None:
    if is_transient(engine_text):
        raise Transient(engine_text, StepFailed(message))
    raise StepFailed(message)
