"""The build report: ``artifacts/build-report.json``, IMAGES_BUILT and a summary table.

The report is rewritten atomically after every image, so a run that dies still leaves
a complete, valid file saying what was done and what was not.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tabulate import tabulate

from stack_builder.errors import shown
from stack_builder.records import markdown
from stack_builder.records.files import write_json, write_lines
from stack_builder.registry.credentials import redact_all
from stack_builder.records.results import ModelResult, TestCounts

BUILT, REUSED, FAILED, SKIPPED, PENDING, UNCHANGED = "built", "reused", "failed", "skipped", "pending", "unchanged"
INTERRUPTED = "interrupted"  # the run was stopped (SIGINT, SIGTERM) before this image was finished
PUBLISHED = (BUILT, REUSED)
MAX_REASON = 1000  # characters of a reason kept in the report and the table


@dataclass
class ImageResult:
    status: str
    reason: str
    ref: str | None = None
    digest: str | None = None
    image_id: str | None = None
    parent: str | None = None
    input_key: str | None = None  # per platform when it has several: {platform: key} in input_keys
    input_keys: dict[str, str] = field(default_factory=dict)
    reused_from: str | None = None  # for status reused: the reference whose image this run published again
    duration_s: float | None = None
    tags: list[str] = field(default_factory=list)
    tests: TestCounts = field(default_factory=TestCounts)
    log: str | None = None
    model: ModelResult | None = None
    manifest: str | None = None
    platforms_built: list[str] = field(default_factory=list)
    platforms_failed: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)  # every tag this run wrote -> the digest it points at
    notes: list[str] = field(default_factory=list)
    content_tags: list[str] = field(default_factory=list)  # tags from what is inside the image (content_tags:)
    example_outputs: dict[str, str] = field(default_factory=dict)  # a model's output on its examples, per platform
    recipe: str | None = None  # which of its recipes (Dockerfiles) built it, when it has several
    recipes_failed: dict[str, str] = field(default_factory=dict)  # the recipes tried before it, and why they failed
    sboms: dict[str, str] = field(default_factory=dict)  # platform -> digest of its SBOM artifact
    signed: list[str] = field(default_factory=list)  # every digest of the image signed (or found signed) by cosign


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
    run_id: str = ""  # the label io.stack-builder.run of every container this run started
    interrupted: str | None = None  # the signal that stopped the run, if one did
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        data["images"] = {name: asdict(result) for name, result in self.images.items()}
        return data

    def update(self, name: str, artifacts: Path, **changes: Any) -> None:
        """Change one image's result and persist the whole report at once."""
        if isinstance(changes.get("reason"), str):  # an engine's error text can be long: keep the start
            changes["reason"] = shown(redact_all(changes["reason"]), MAX_REASON)  # redacted before it is cut
        with self._lock:
            for key, value in changes.items():
                setattr(self.images[name], key, value)
            write_json(artifacts / "build-report.json", self.as_dict())

    def save(self, artifacts: Path) -> None:
        with self._lock:
            write_json(artifacts / "build-report.json", self.as_dict())
            pushed = [r.ref for r in self.images.values() if r.status in PUBLISHED and self.pushed and r.ref]
            write_lines(artifacts / "IMAGES_BUILT", pushed)

    def failed(self) -> list[str]:
        return [n for n, r in self.images.items() if r.status in (FAILED, SKIPPED, PENDING, INTERRUPTED)]

    def markdown(self) -> str:
        """The summary as a GitHub-flavoured Markdown table (for $GITHUB_STEP_SUMMARY), every value escaped."""
        lines = [f"### Build {markdown.code(self.tag)} of {markdown.code(self.commit[:12])}", "",
                 "| image | status | time | tests | ref / reason |", "| --- | --- | --- | --- | --- |"]
        for name, r in self.images.items():
            tests = f"{r.tests.passed} passed, {r.tests.failed} failed" if r.tests.junit else ""
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
            detail = markdown.code(r.ref) if r.status in PUBLISHED and r.ref else markdown.text(r.reason)
            if r.recipe:
                detail += " " + markdown.text(_recipe_note(r))
            lines.append(f"| {markdown.text(name)} | {r.status} | {duration} | {tests} | {detail} |")
        return redact_all("\n".join(lines) + "\n")

    def table(self) -> str:
        rows = []
        for name, r in self.images.items():
            tests = f"{r.tests.passed} passed, {r.tests.failed} failed" \
                if r.status in (BUILT, FAILED) and r.tests.junit else ""
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
            detail = r.ref if r.status == BUILT else f"{r.ref} (from {r.reused_from})" if r.status == REUSED \
                else r.reason
            if r.recipe:
                detail = f"{detail} {_recipe_note(r)}"
            rows.append([name, r.status, duration, tests, detail])
        return redact_all(tabulate(rows, headers=["image", "status", "time", "tests", "ref / reason"]))


def _recipe_note(result: ImageResult) -> str:
    failed = f", after {', '.join(result.recipes_failed)} failed" if result.recipes_failed else ""
    return f"(recipe {result.recipe}{failed})"


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report for a whole CI run from its jobs' reports (one per image and platform).

    Per image: failed if any job failed it, else interrupted or skipped if any job was, else built (reused
    when every job reused it); platforms, moved tags and test counts are gathered from every job.
    """
    if not reports:
        raise ValueError("no reports to merge")
    merged: dict[str, Any] = {k: v for k, v in reports[0].items() if k != "images"}
    merged["jobs"] = len(reports)
    merged["started"] = min(str(r.get("started") or "") for r in reports)
    merged["finished"] = max(str(r.get("finished") or "") for r in reports) or None
    by_image: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        for name, result in (report.get("images") or {}).items():
            by_image.setdefault(str(name), []).append(dict(result))
    merged["images"] = {name: _merged_image(results) for name, results in by_image.items()}
    return merged


def _merged_image(results: list[dict[str, Any]]) -> dict[str, Any]:
    acted = [r for r in results if r.get("status") not in (UNCHANGED, PENDING)] or results
    statuses = {str(r.get("status")) for r in acted}
    status = next((s for s in (FAILED, INTERRUPTED, SKIPPED, PENDING) if s in statuses),
                  REUSED if statuses == {REUSED} else BUILT if statuses <= set(PUBLISHED) else UNCHANGED)
    out = dict(acted[0])
    out["status"] = status
    out["reason"] = "; ".join(dict.fromkeys(str(r.get("reason", "")) for r in acted if r.get("status") == status))
    out["platforms_built"] = sorted({str(p) for r in acted for p in r.get("platforms_built") or []})
    out["platforms_failed"] = {str(k): v for r in acted for k, v in (r.get("platforms_failed") or {}).items()}
    out["moved"] = {str(k): v for r in acted for k, v in (r.get("moved") or {}).items()}
    out["sboms"] = {str(k): v for r in acted for k, v in (r.get("sboms") or {}).items()}
    out["signed"] = list(dict.fromkeys(str(d) for r in acted for d in r.get("signed") or []))
    out["example_outputs"] = {str(k): v for r in acted for k, v in (r.get("example_outputs") or {}).items()}
    out["recipes_failed"] = {str(k): v for r in acted for k, v in (r.get("recipes_failed") or {}).items()}
    out["content_tags"] = list(dict.fromkeys(str(t) for r in acted for t in r.get("content_tags") or []))
    counts = [dict(r.get("tests") or {}) for r in acted]
    out["tests"] = {**counts[0], **{key: sum(int(c.get(key, 0)) for c in counts)
                                    for key in ("passed", "failed", "skipped")}}
    return out
