"""The build report: ``artifacts/build-report.json``, IMAGES_CHANGED, IMAGES_BUILT and a summary table.

The report is rewritten atomically after every image, so a run that dies still leaves
a complete, valid file saying what was done and what was not.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import datetime, timezone
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tabulate import tabulate

BUILT, FAILED, SKIPPED, UNCHANGED, PENDING = "built", "failed", "skipped", "unchanged", "pending"


@dataclass
class ImageResult:
    status: str
    reason: str
    ref: str | None = None
    digest: str | None = None
    image_id: str | None = None
    parent: str | None = None
    duration_s: float | None = None
    tags: list[str] = field(default_factory=list)
    tests: dict[str, Any] = field(default_factory=lambda: {"passed": 0, "failed": 0, "junit": None})
    log: str | None = None
    model: dict[str, Any] | None = None
    manifest: str | None = None
    platforms_built: list[str] = field(default_factory=list)
    platforms_failed: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildReport:
    commit: str
    branch: str
    tag: str
    registry: str
    pushed: bool
    base: str | None
    base_source: str
    images: dict[str, ImageResult]
    started: str = ""
    finished: str | None = None
    registry_stats: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        data["images"] = {name: asdict(result) for name, result in self.images.items()}
        return data

    def update(self, name: str, artifacts: Path, **changes: Any) -> None:
        """Change one image's result and persist the whole report at once."""
        with self._lock:
            for key, value in changes.items():
                setattr(self.images[name], key, value)
            write_json(artifacts / "build-report.json", self.as_dict())

    def save(self, artifacts: Path) -> None:
        with self._lock:
            write_json(artifacts / "build-report.json", self.as_dict())
            pushed = [r.ref for r in self.images.values() if r.status == BUILT and self.pushed and r.ref]
            write_lines(artifacts / "IMAGES_BUILT", pushed)

    def failed(self) -> list[str]:
        return [n for n, r in self.images.items() if r.status in (FAILED, SKIPPED, PENDING)]

    def table(self) -> str:
        rows = []
        for name, r in self.images.items():
            tests = f"{r.tests.get('passed', 0)} passed, {r.tests.get('failed', 0)} failed" \
                if r.status in (BUILT, FAILED) and r.tests.get("junit") else ""
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
            detail = r.ref if r.status == BUILT else r.reason
            rows.append([name, r.status, duration, tests, detail])
        return tabulate(rows, headers=["image", "status", "time", "tests", "ref / reason"])


def utc_now() -> str:
    """The time now in UTC, as every record and page of ours writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_lines(path: Path, lines: list[str]) -> None:
    _atomic_write(path, "".join(f"{line}\n" for line in lines))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
