"""Errors a user can cause, with messages written for them.

Anything that is not a ``StackError`` is our bug and keeps its traceback.
"""
from __future__ import annotations

SHOWN_CHARS = 120  # how much of an offending value a message shows
MAX_PROBLEMS = 50  # how many problems one error lists


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text for a message, cut to ``limit`` characters with "…": a hostile value stays small."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class StackError(Exception):
    """A mistake or an unmet precondition the user can fix; the message says how."""


class SpecError(StackError):
    """``spec.yml`` is invalid. Holds every problem found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        head = "spec is invalid (1 problem):" if count == 1 else f"spec is invalid ({count} problems):"
        listed = ["  " + shown(p, 4 * SHOWN_CHARS) for p in problems[:MAX_PROBLEMS]]
        more = [f"  … and {count - MAX_PROBLEMS} more"] if count > MAX_PROBLEMS else []
        super().__init__("\n".join([head, *listed, *more]))


class EngineError(StackError):
    """The Docker engine cannot be reached or refused a request."""


class RegistryError(StackError):
    """A registry answered with a definitive error."""


class GitError(StackError):
    """The stack is not in a usable git repository, or a ref does not exist."""


class StepFailed(StackError):
    """A build, test, check or push step failed for one image; the message is its reason.

    It fails that image only: the build records it and skips the image's descendants.
    """


class Interrupted(StepFailed):
    """The run was asked to stop (SIGINT, SIGTERM) while this step ran; the image is marked interrupted."""


class Transient(Exception):
    """One attempt failed in a way that may pass if tried again (a 5xx, a reset, a timeout).

    Raised inside a single attempt and caught by the retry policy; never reaches a user. ``final``
    is the error to raise when the attempts run out.
    """

    def __init__(self, reason: str, final: StackError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
