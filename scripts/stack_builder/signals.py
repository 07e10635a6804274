"""Stopping a run when asked: the first SIGINT or SIGTERM stops it promptly; a second SIGINT exits at once.

While ``handling()`` is active, a signal only sets a flag and ends the child processes (builds, test
runs) that were registered with ``child()``; the run then starts nothing new, pushes nothing more,
and marks what it did not finish. Work that waits on something the signal cannot reach (a container)
is ended by the ``on_stop`` callbacks, which run on a thread of their own, never inside the handler.
SIGINT is honoured even when the run inherited it ignored (a background job of a script).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator

from stack_builder.errors import Interrupted

LOGGER = logging.getLogger(__name__)

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _State:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.lock = threading.Lock()
        self.children: set[subprocess.Popen[Any]] = set()
        self.on_stop: list[Callable[[], None]] = []


_STATE = _State()


def stopping() -> bool:
    """True once the run was asked to stop."""
    return _STATE.event.is_set()


def check() -> None:
    """Raise ``Interrupted`` once the run was asked to stop: call it before starting anything new."""
    if _STATE.event.is_set():
        raise Interrupted(f"stopped by {signal_name()}")


def signal_name() -> str:
    return signal.Signals(_STATE.signum).name if _STATE.signum is not None else "a signal"


def exit_code() -> int | None:
    """130 after SIGINT, 143 after SIGTERM, None when no signal came."""
    return EXIT_CODES.get(signal.Signals(_STATE.signum)) if _STATE.signum is not None else None


@contextmanager
def handling(on_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Handle SIGINT and SIGTERM for the duration (main thread only); ``on_stop`` runs once when one comes."""
    global _STATE
    _STATE = _State()
    if on_stop is not None:
        _STATE.on_stop.append(on_stop)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _STATE
    done = threading.Event()
    # Started here, never in the handler: a handler runs between two bytecodes of the main thread, which
    # may hold the lock Thread.start() needs.
    watcher = threading.Thread(target=_watch, args=(state, done), name="stopping", daemon=True)
    watcher.start()
    previous = {sig: signal.signal(sig, _handle) for sig in EXIT_CODES}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        done.set()
        if state.event.is_set():  # a stop came: let its clean-up finish; else the watcher ends by itself
            watcher.join(timeout=1)


def _handle(signum: int, _frame: FrameType | None) -> None:
    state = _STATE
    if state.event.is_set():
        if signum == signal.SIGINT:  # the second Ctrl-C: leave now, taking the children along
            _signal_children(state, signal.SIGKILL)
            os._exit(130)
        return
    state.signum = signum
    state.event.set()
    _signal_children(state, signal.SIGTERM)


def _watch(state: _State, done: threading.Event) -> None:
    """Wait for a stop request (or the end of the run); on a stop, say so and run the clean-up callbacks."""
    while not state.event.wait(0.2):
        if done.is_set():
            return
    LOGGER.warning("%s: stopping; nothing new starts and nothing more is pushed (a second SIGINT exits at once)",
                   signal_name())
    for callback in state.on_stop:
        try:
            callback()
        except Exception:  # cleaning up must not hide the interruption itself
            LOGGER.exception("cleaning up after %s failed", signal_name())


def _signal_children(state: _State, sig: int) -> None:
    with state.lock:
        children = list(state.children)
    for proc in children:
        _signal_group(proc, sig)


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # children run in sessions of their own: this reaches their children too
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def child(proc: subprocess.Popen[Any]) -> Iterator[None]:
    """Register ``proc`` (started with ``start_new_session=True``) to be ended when the run stops."""
    state = _STATE
    with state.lock:
        state.children.add(proc)
    if state.event.is_set():
        _signal_group(proc, signal.SIGTERM)
    try:
        yield
    finally:
        with state.lock:
            state.children.discard(proc)


def end(proc: subprocess.Popen[Any]) -> None:
    """Stop ``proc`` and its children: SIGTERM, then SIGKILL if it has not gone within 5 s."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
