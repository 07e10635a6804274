"""The one retry policy: retry only what is transient, with exponential backoff.

Registry HTTP requests and engine pushes both run through it. A single attempt raises
``Transient`` for a failure that may pass (a 5xx, a reset, a timeout); anything else, a 401 or a
"manifest unknown" for example, propagates at once.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from stack_builder.errors import Transient

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """``retries`` more attempts after the first, waiting backoff_s, 2×, 4×, … between them."""

    retries: int = 5
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    retried: int = field(default=0, compare=False)  # how many retries this policy has made, for the report

    def run(self, attempt: Callable[[], T], *, what: str,
            on_retry: Callable[[int, float, str], None] | None = None) -> T:
        """Call ``attempt`` until it returns; raise the last ``Transient``'s final error when out of attempts."""
        number = 0
        while True:
            number += 1
            try:
                return attempt()
            except Transient as exc:
                if number > self.retries:
                    raise exc.final from None
                delay = self.backoff_s * 2 ** (number - 1)
                self.retried += 1
                LOGGER.warning("%s: %s; retry %d in %.1fs", what, exc.reason, number, delay)
                if on_retry is not None:
                    on_retry(number, delay, exc.reason)
                self.sleep(delay)
