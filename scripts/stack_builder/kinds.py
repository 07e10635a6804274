"""Kinds, not text: an image's status and why it was built or left out, as values code may branch on.

The text of a ``Reason`` is only shown (logs, report, wiki); code decides on its ``kind``. Both enums are
``str`` enums so the report's JSON keeps the same plain strings it always had.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    """Where one image of a run stands: the report, the table, the wiki and the catalog all use these."""

    PENDING = "pending"
    BUILT = "built"
    REUSED = "reused"
    FAILED = "failed"
    SKIPPED = "skipped"  # an ancestor failed
    INTERRUPTED = "interrupted"  # the run was stopped (SIGINT, SIGTERM) before this image was finished
    UNCHANGED = "unchanged"  # not selected by this run

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: object) -> "Status":
        """A status as a report's JSON has it; a value this version does not know counts as failed, never as
        published."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.FAILED

    @property
    def published(self) -> bool:
        return self in (Status.BUILT, Status.REUSED)

    @property
    def unfinished(self) -> bool:
        """A run that leaves an image in this status did not do what it was asked."""
        return self in (Status.FAILED, Status.SKIPPED, Status.PENDING, Status.INTERRUPTED)


class ReasonKind(str, Enum):
    """Why an image is in a run (or what went wrong with it): what code branches on."""

    CHANGED = "changed"  # its files changed since the base commit
    DESCENDANT = "descendant"  # an ancestor is rebuilt
    BY_HAND = "by hand"  # --image
    FORCED = "forced"  # --all, no commits yet, or "full rebuild" in the commit message
    NOT_IN_REGISTRY = "not in registry"  # the registry lacks it (or an ancestor)
    BASE_UPDATED = "base updated"  # --refresh-base found its upstream base moved
    NEEDED_PARENT = "needed parent"  # a parent found nowhere, built for a selected child
    NOT_SELECTED = "not selected"
    ANCESTOR_FAILED = "ancestor failed"
    INTERRUPTED = "interrupted"
    OUTPUTS_DISAGREE = "outputs disagree"  # a model platform's example outputs disagree with the native one's
    NOT_ATTEMPTED = "not attempted"  # the platform built first failed
    FAILED = "failed"  # a build, test, check or push failed
    INTERNAL = "internal error"  # our bug

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Reason:
    """Why: a kind for code, a text for people. ``str(reason)`` is the text."""

    kind: ReasonKind
    text: str

    def __str__(self) -> str:
        return self.text
