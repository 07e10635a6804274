"""What every task body shares: logging with secrets redacted, and user errors as one clear message.

A task body answers True, or ``Failed`` with the message to show: doit's action (``doit_tasks``) makes that doit's
own failure, and a command run without doit (``direct``) prints it; neither needs the other here.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Callable

from stack_builder import signals
from stack_builder.errors import StackError
from stack_builder.secrets import RedactingFilter, redact_all
from stack_builder.settings import Settings


def configure_logging() -> None:
    """Log to stderr, with registry secrets redacted from every record."""
    root = logging.getLogger()
    if any(getattr(h, "_stack", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._stack = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    settings = Settings.from_env()  # registers the environment's secrets, which the filter reads
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if settings.ci.debug else logging.INFO)
    for noisy in ("urllib3", "docker", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Failed:
    """A task that failed: ``message`` says why, and what to do."""

    message: str


def run_task(work: Callable[[], bool]) -> bool | Failed:
    """Run a task body: user errors become one clear message and a failed task, never a traceback.

    A run stopped by SIGINT or SIGTERM (see ``signals``) exits 130 or 143 once it has cleaned up.
    """
    try:
        configure_logging()  # (reads the settings: a bad one is a user error too)
        result: bool | Failed = True if work() else Failed("see the messages above")
    except StackError as exc:
        result = Failed(redact_all(f"error: {exc}"))
    except KeyboardInterrupt:  # a task that does not handle signals itself: stop quietly
        raise SystemExit(130) from None
    code = signals.exit_code()
    if code is not None:
        if isinstance(result, Failed):
            print(result.message, file=sys.stderr)
        print(f"stopped by {signals.signal_name()}: exiting {code}", file=sys.stderr)
        raise SystemExit(code)
    return result
