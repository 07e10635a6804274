"""Structured access logs: one JSON line per request (time, client, method, path, status, bytes, milliseconds,
and for a lookup the keys asked and the digest answered), with every known secret redacted. Never a header,
a query string or a body: credentials travel there."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable, MutableMapping

from stack_builder.records.files import utc_now
from stack_builder.secrets import redact_all

LOGGER = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
NOTED = ("keys", "digest", "error")  # what a handler notes in the request's state for the log


class AccessLog:
    """ASGI middleware: logs each HTTP request when its answer is sent, on this module's logger."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, int] = {"status": 500, "bytes": 0}

        async def sending(event: Message) -> None:
            if event["type"] == "http.response.start":
                seen["status"] = int(event["status"])
            elif event["type"] == "http.response.body":
                seen["bytes"] += len(event.get("body", b""))
            await send(event)

        try:
            await self.app(scope, receive, sending)
        finally:
            LOGGER.info(line(scope, seen["status"], seen["bytes"], time.perf_counter() - started))


def line(scope: Scope, status: int, size: int, seconds: float) -> str:
    """The JSON line of one request."""
    client = scope.get("client")
    entry: dict[str, Any] = {"time": utc_now(), "client": client[0] if client else None,
                             "method": scope.get("method"), "path": scope.get("path"), "status": status,
                             "bytes": size, "ms": round(seconds * 1000, 2)}
    state = scope.get("state") or {}
    entry.update({name: state[name] for name in NOTED if name in state})
    return redact_all(json.dumps(entry, ensure_ascii=True, default=str))
