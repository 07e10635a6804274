"""An image's log file: every line starts with the UTC time it was written (HH:MM:SS), whoever writes it."""
from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, cast

from stack_builder.records.files import utc_clock


class StampedLog(io.TextIOBase):
    """A text stream that puts the time in front of each line it is given, in whatever pieces it comes."""

    def __init__(self, target: IO[str]) -> None:
        super().__init__()
        self.target = target
        self.at_line_start = True
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            for piece in text.splitlines(keepends=True):
                if self.at_line_start:
                    self.target.write(utc_clock() + " ")
                self.target.write(piece)
                self.at_line_start = piece.endswith("\n")
            return len(text)

    def flush(self) -> None:
        self.target.flush()


@contextmanager
def open_log(path: Path) -> Iterator[IO[str]]:
    """``path`` opened for appending, each line time-stamped."""
    with path.open("a", encoding="utf-8") as handle:
        stamped = StampedLog(handle)
        yield cast(IO[str], stamped)
        stamped.flush()


def copy_lines(source: IO[bytes], log: IO[str]) -> threading.Thread:
    """Copy a child's output into ``log`` line by line, as it comes, on a thread of its own (started)."""
    def pump() -> None:
        for raw in iter(source.readline, b""):
            log.write(raw.decode("utf-8", "replace"))
            log.flush()
    thread = threading.Thread(target=pump, name="log-copy", daemon=True)
    thread.start()
    return thread
