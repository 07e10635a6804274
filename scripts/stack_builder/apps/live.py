"""The live display of a build on a terminal (rich): one line per image in flight with its step and time,
and the run's [done/total]. Log lines print above it; nothing of it is written when not on a terminal."""
from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from stack_builder.settings import CiSettings

DONE = "done: "  # the step an image is in once it is finished


def wanted(ci: CiSettings | None = None) -> bool:
    """A live display only on a terminal, and never in CI (whose log is a file). ``ci``: the task's settings."""
    ci = CiSettings.from_env() if ci is None else ci
    return sys.stderr.isatty() and not ci.ci and not ci.github_actions


class LiveProgress:
    """``observe(image, step, done, total)`` is the build's observer; ``with`` shows and ends the display."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.steps: dict[str, tuple[str, float]] = {}  # image -> (step, since)
        self.done, self.total = 0, 0
        self.lock = threading.Lock()
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False,
                         redirect_stderr=True, get_renderable=self._table)
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def observe(self, image: str, step: str, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total
            if step.startswith(DONE):
                self.steps.pop(image, None)  # no longer in flight
                self.console.print(f"[{done}/{total}] {image}: {step[len(DONE):]}", highlight=False)
                return
            since = self.steps.get(image, (step, time.monotonic()))[1]
            self.steps[image] = (step, since)

    def _table(self) -> Table:
        with self.lock:
            table = Table(box=None, show_header=False, pad_edge=False, title=f"[{self.done}/{self.total}] images",
                          title_justify="left")
            for image, (step, since) in sorted(self.steps.items()):
                table.add_row(image, step, f"{time.monotonic() - since:5.0f}s")
            return table

    def __enter__(self) -> "LiveProgress":
        self.live.start()
        # The log keeps printing, above the display: point its handlers at the console's stderr.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "_stack", False):
                self._streams.append((handler, handler.setStream(sys.stderr)))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self.live.stop()
