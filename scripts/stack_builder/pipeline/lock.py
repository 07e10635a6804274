"""One build at a time per stack folder: a second run waits for the first, then goes on."""
from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from stack_builder import signals
from stack_builder.errors import StackError

LOGGER = logging.getLogger(__name__)


@contextmanager
def stack_lock(path: Path, *, wait_s: float = 3600.0, what: str = "build") -> Iterator[None]:
    """Hold an exclusive lock on ``path``; wait up to ``wait_s`` for another holder, then refuse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    LOGGER.warning("another %s is running in this stack (%s); waiting for it to finish", what, holder)
                    told = True
                signals.check()  # asked to stop while waiting: leave without starting
                if time.monotonic() >= deadline:
                    raise StackError(f"another {what} still holds {path} after {wait_s:.0f} s; "
                                     "try again when it has finished") from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()
