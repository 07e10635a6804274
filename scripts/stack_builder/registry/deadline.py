"""A total deadline for each registry request: its connection, redirects and body included.

requests' timeout bounds each read, so a server that sends one byte every few seconds holds a request
forever. Here a request runs ``within(seconds)``: the sockets it uses register themselves (through the
connection classes that ``DeadlineAdapter`` gives its pools), and one watchdog thread shuts them down when
the deadline passes. The request then fails at once, and ``Deadline.passed`` tells the caller why.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

POLL_S = 0.25  # how late, at most, the watchdog notices a deadline


class Deadline:
    """One request's deadline and the sockets it has used so far; a context manager that runs the request on
    this thread under it (``within``)."""

    __slots__ = ("seconds", "at", "passed", "_sockets")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> "Deadline":
        _WATCHDOG.add(self)
        _CURRENT.deadline = self
        return self

    def __exit__(self, *_exc: object) -> None:
        _CURRENT.deadline = None
        _WATCHDOG.remove(self)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        self._sockets.append(sock)  # (list.append is atomic; the watchdog reads a copy)
        if self.passed:
            _shut(sock)

    def expire(self) -> None:
        self.passed = True
        for sock in list(self._sockets):
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    """End the socket's traffic both ways (a blocked read returns at once); the owner still closes it.
    The plain socket's own method: an SSL socket's would drop its TLS state under a reading thread."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or never connected


class _Watchdog:
    """The one thread that expires deadlines, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[Deadline] = set()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="registry-deadline", daemon=True)
                self._thread.start()

    def remove(self, deadline: Deadline) -> None:
        with self._lock:
            self._active.discard(deadline)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [d for d in self._active if d.at <= now]
                self._active.difference_update(due)
                nearest = min((d.at for d in self._active), default=now + POLL_S)
            for deadline in due:
                deadline.expire()
            time.sleep(min(POLL_S, max(0.01, nearest - now)))


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()  # .deadline: the deadline of the request this thread is making


def within(seconds: float) -> Deadline:
    """A deadline of ``seconds`` for one request (with its redirects and body) on this thread: ``with within(s)``."""
    return Deadline(seconds)


def _register(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_CURRENT, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _Registering:
    """Registers the connection's socket with the request's deadline: once connected, and before each answer
    is read (a kept-alive connection is not connected again)."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _register(self.sock)

    def getresponse(self) -> HTTPResponse:
        _register(self.sock)
        return super().getresponse()  # type: ignore[misc,no-any-return]


class _WatchedHTTPConnection(_Registering, HTTPConnection):  # type: ignore[misc]  # (urllib3 narrows it so too)
    pass


class _WatchedHTTPSConnection(_Registering, HTTPSConnection):  # type: ignore[misc]
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watch_pools(manager: PoolManager) -> PoolManager:
    """Give ``manager``'s new pools the watched connections (not a SOCKS manager's: it has its own)."""
    if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, whose connections register their sockets with the request's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))
