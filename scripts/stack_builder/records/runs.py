"""What kind of run a record is about (a build, a promotion, a rollback), as values code may branch on.

The wiki's ``_data/builds.json`` keeps one row per run. Rows stored before these kinds existed said it in
a display text ("promotion (GPU test skipped) rollback"); ``Run.from_json`` reads both forms, once, where
the JSON is read, and rows are written back only in the new form.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

LOGGER = logging.getLogger(__name__)


class RunKind(str, Enum):
    """A run of the builder that changes what a tag points at. ``str`` enum: stored as its plain value."""

    BUILD = "build"
    PROMOTION = "promotion"
    ROLLBACK = "rollback"  # undoes a promotion

    def __str__(self) -> str:
        return self.value

    @property
    def moves_tags(self) -> bool:
        """Promotions and rollbacks move existing images' tags; the wiki lists them apart from builds."""
        return self is not RunKind.BUILD


class StableKind(str, Enum):
    """Which stable tag a promotion moves: the quarter's ``<quarter>-stable``, or the global ``stable``."""

    QUARTER = "quarter stable"
    GLOBAL = "global stable"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, global_stable: bool) -> StableKind:
        return cls.GLOBAL if global_stable else cls.QUARTER


# Every kind text a row was stored with before rows had a kind and a gpu_test_skipped field of their own:
# the builder wrote "promotion" + " (GPU test skipped)" if skipped + " rollback" if a rollback.
_LEGACY_KINDS: Mapping[str, tuple[RunKind, bool]] = {
    "promotion": (RunKind.PROMOTION, False),
    "promotion (GPU test skipped)": (RunKind.PROMOTION, True),
    "promotion rollback": (RunKind.ROLLBACK, False),
    "promotion (GPU test skipped) rollback": (RunKind.ROLLBACK, True),
}
_FIELDS = ("kind", "gpu_test_skipped", "commit", "commit_url", "branch", "tag", "time", "label", "images")


@dataclass(frozen=True, kw_only=True)
class Run:
    """One row of the wiki's builds table: a build, a promotion or a rollback, and the images it concerns."""

    kind: RunKind
    commit: str  # a build's commit; for a promotion, the digests it moved
    tag: str
    time: str
    branch: str = ""
    commit_url: str | None = None
    label: str = ""  # a promotion's "from → to"
    gpu_test_skipped: bool = False
    images: tuple[Mapping[str, Any], ...] = ()  # name, tag, page (and reused_from) of each image
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields of a newer builder, kept as they were

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        """A stored (or just recorded) row, in either the current or the old text form of its kind."""
        kind, skipped = _kind_of(data.get("kind", RunKind.BUILD.value))
        return cls(kind=kind, gpu_test_skipped=bool(data.get("gpu_test_skipped", skipped)),
                   commit=str(data["commit"]), tag=str(data["tag"]), time=str(data["time"]),
                   branch=str(data.get("branch") or ""), commit_url=data.get("commit_url") or None,
                   label=str(data.get("label") or ""), images=tuple(dict(i) for i in data.get("images") or ()),
                   extra={k: v for k, v in data.items() if k not in _FIELDS})

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {**self.extra, "commit": self.commit, "commit_url": self.commit_url,
                               "branch": self.branch, "tag": self.tag, "time": self.time, "kind": self.kind.value,
                               "images": [dict(i) for i in self.images]}
        if self.label:
            row["label"] = self.label
        if self.kind.moves_tags:
            row["gpu_test_skipped"] = self.gpu_test_skipped
        return row

    @property
    def gates(self) -> str:
        """The promotion gates, as shown."""
        return "GPU test skipped" if self.gpu_test_skipped else "passed"


def _kind_of(stored: object) -> tuple[RunKind, bool]:
    """(kind, GPU test skipped) of a stored kind value. An unknown one is read as a build, as the wiki always
    showed rows whose kind it did not know."""
    text = str(stored)
    if text in _LEGACY_KINDS:
        return _LEGACY_KINDS[text]
    try:
        return RunKind(text), False
    except ValueError:
        LOGGER.warning("wiki data: a row of unknown kind %r is shown as a build", text)
        return RunKind.BUILD, False
