"""One retry policy for registry requests and engine pushes: transient failures only, exponential backoff."""
from __future__ import annotations

from typing import Callable

import pytest

from stack_builder.engine.push import is_transient
from stack_builder.errors import RegistryError, StepFailed, Transient
from stack_builder.retry import RetryPolicy


def failing(times: int, *, final: Exception | None = None) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise Transient(f"HTTP 503 (try {len(calls)})", RegistryError("registry kept failing"))
        if final is not None:
            raise final
        return "done"

    return calls, attempt


def test_transient_failures_are_retried_with_doubling_waits() -> None:
    waits: list[float] = []
    policy = RetryPolicy(retries=5, backoff_s=0.5, sleep=waits.append)
    calls, attempt = failing(3)
    assert policy.run(attempt, what="test") == "done"
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0] and policy.retried == 3


def test_out_of_attempts_raises_the_final_error() -> None:
    waits: list[float] = []
    calls, attempt = failing(99)
    with pytest.raises(RegistryError, match="kept failing"):
        RetryPolicy(retries=2, backoff_s=0.1, sleep=waits.append).run(attempt, what="test")
    assert len(calls) == 3 and waits == [0.1, 0.2]


def test_a_definitive_error_is_raised_at_once() -> None:
    waits: list[float] = []
    calls, attempt = failing(0, final=StepFailed("denied"))
    with pytest.raises(StepFailed, match="denied"):
        RetryPolicy(sleep=waits.append).run(attempt, what="test")
    assert len(calls) == 1 and waits == []


@pytest.mark.parametrize("message,transient", [
    ("received unexpected HTTP status: 503 Service Unavailable", True),
    ("received unexpected HTTP status: 500 Internal Server Error", True),
    ("Patch http://127.0.0.1:5000/v2/x/blobs/uploads/1: read tcp 1->2: read: connection reset by peer", True),
    ("Put http://127.0.0.1:5000/v2/x/manifests/t: EOF", True),
    ("dial tcp 127.0.0.1:5000: connect: connection refused", True),
    ("unauthorized: authentication required", False),
    ("denied: requested access to the resource is denied", False),
    ("received unexpected HTTP status: 401 Unauthorized", False),
    ("received unexpected HTTP status: 404 Not Found", False),
    ("manifest invalid: manifest invalid", False),
])
def test_engine_push_errors_are_classified(message: str, transient: bool) -> None:
    assert is_transient(message) is transient
