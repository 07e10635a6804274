"""The build report: ``artifacts/build-report.json``, IMAGES_BUILT and a summary table.

The report is rewritten atomically after every image, so a run that dies still leaves
a complete, valid file saying what was done and what was not.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from stack_builder.errors import StackError, shown
from stack_builder.kinds import Reason, ReasonKind, Status
from stack_builder.records import markdown
from stack_builder.records.files import read_json, write_json, write_lines
from stack_builder.registry.credentials import redact_all
from stack_builder.records.results import ModelResult, TestCounts

MAX_REASON = 1000  # characters of a reason kept in the report and the table
# build-report.json's format. 1: since the first release (0.1.0, which wrote no number: a report without one is 1).
# A reader refuses a newer format, naming the file, rather than misread it.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ImageResult:
    """One image of a run, as the report keeps it: made once, by the step that decided it."""

    status: Status
    reason: Reason
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
    platforms_disagreeing: list[str] = field(default_factory=list)  # model platforms left out: outputs disagree
    allowed_over_budget: bool = False  # over its budget, pushed anyway with --allow-over-budget
    engines: dict[str, str] = field(default_factory=dict)  # platform -> the engine (its name) that built it

    @property
    def ok(self) -> bool:
        return self.status.published

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["reason"] = self.reason.text
        data["reason_kind"] = self.reason.kind.value
        return data


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
    builder: str = ""  # the version of stack-builder that made the run
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        data = {"format_version": FORMAT_VERSION,
                **{f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}}
        data["images"] = {name: result.as_dict() for name, result in self.images.items()}
        return data

    def record(self, name: str, result: ImageResult, artifacts: Path) -> None:
        """Put one image's result in the report and persist the whole report at once."""
        # An engine's error text can be long: keep the start, redacted before it is cut.
        reason = Reason(result.reason.kind, shown(redact_all(result.reason.text), MAX_REASON))
        with self._lock:
            self.images[name] = replace(result, reason=reason)
            write_json(artifacts / "build-report.json", self.as_dict())

    def save(self, artifacts: Path) -> None:
        with self._lock:
            write_json(artifacts / "build-report.json", self.as_dict())
            pushed = [r.ref for r in self.images.values() if r.status.published and self.pushed and r.ref]
            write_lines(artifacts / "IMAGES_BUILT", pushed)

    def failed(self) -> list[str]:
        return [n for n, r in self.images.items() if r.status.unfinished]

    def count_finished(self) -> int:
        with self._lock:
            return sum(1 for r in self.images.values() if r.status is not Status.PENDING)

    def markdown(self) -> str:
        """The summary as a GitHub-flavoured Markdown table (for $GITHUB_STEP_SUMMARY), every value escaped."""
        lines = [f"### Build {markdown.code(self.tag)} of {markdown.code(self.commit[:12])}", "",
                 "| image | status | time | tests | ref / reason |", "| --- | --- | --- | --- | --- |"]
        for name, r in self.images.items():
            tests = f"{r.tests.passed} passed, {r.tests.failed} failed" if r.tests.junit else ""
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
            detail = markdown.code(r.ref) if r.status.published and r.ref else markdown.text(r.reason.text)
            if r.recipe:
                detail += " " + markdown.text(_recipe_note(r))
            lines.append(f"| {markdown.text(name)} | {r.status} | {duration} | {tests} | {detail} |")
        return redact_all("\n".join(lines) + "\n")

    def table(self) -> str:
        rows = []
        for name, r in self.images.items():
            tests = f"{r.tests.passed} passed, {r.tests.failed} failed" \
                if r.status in (Status.BUILT, Status.FAILED) and r.tests.junit else ""
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
            detail = r.ref if r.status is Status.BUILT else f"{r.ref} (from {r.reused_from})" \
                if r.status is Status.REUSED else r.reason.text
            if r.recipe:
                detail = f"{detail} {_recipe_note(r)}"
            if r.allowed_over_budget:
                detail = f"{detail} (over budget: --allow-over-budget)"
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
    merged["format_version"] = FORMAT_VERSION
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
    acted = [r for r in results if _status(r) not in (Status.UNCHANGED, Status.PENDING)] or results
    statuses = {_status(r) for r in acted}
    published = {Status.BUILT, Status.REUSED}
    status = next((s for s in (Status.FAILED, Status.INTERRUPTED, Status.SKIPPED, Status.PENDING) if s in statuses),
                  Status.REUSED if statuses == {Status.REUSED} else Status.BUILT if statuses <= published
                  else Status.UNCHANGED)
    out = dict(acted[0])
    out["status"] = status.value
    out["reason"] = "; ".join(dict.fromkeys(str(r.get("reason", "")) for r in acted if _status(r) is status))
    out["platforms_built"] = sorted({str(p) for r in acted for p in r.get("platforms_built") or []})
    out["platforms_failed"] = {str(k): v for r in acted for k, v in (r.get("platforms_failed") or {}).items()}
    out["moved"] = {str(k): v for r in acted for k, v in (r.get("moved") or {}).items()}
    out["sboms"] = {str(k): v for r in acted for k, v in (r.get("sboms") or {}).items()}
    out["signed"] = list(dict.fromkeys(str(d) for r in acted for d in r.get("signed") or []))
    out["example_outputs"] = {str(k): v for r in acted for k, v in (r.get("example_outputs") or {}).items()}
    out["recipes_failed"] = {str(k): v for r in acted for k, v in (r.get("recipes_failed") or {}).items()}
    out["platforms_disagreeing"] = sorted({str(p) for r in acted for p in r.get("platforms_disagreeing") or []})
    out["content_tags"] = list(dict.fromkeys(str(t) for r in acted for t in r.get("content_tags") or []))
    out["engines"] = {str(k): str(v) for r in acted for k, v in (r.get("engines") or {}).items()}
    out["allowed_over_budget"] = any(bool(r.get("allowed_over_budget")) for r in acted)
    counts = [dict(r.get("tests") or {}) for r in acted]
    out["tests"] = {**counts[0], **{key: sum(int(c.get(key, 0)) for c in counts)
                                    for key in ("passed", "failed", "skipped")}}
    return out


def _status(result: dict[str, Any]) -> Status:
    return Status.of(result.get("status"))


def pending(reason: Reason) -> ImageResult:
    return ImageResult(Status.PENDING, reason)


def not_run(status: Status, kind: ReasonKind, text: str) -> ImageResult:
    """The result of an image that never reached its publish step (skipped, interrupted)."""
    return ImageResult(status, Reason(kind, text))


def read_report(path: Path, *, what: str, default: Any = None, missing_ok: bool = True) -> Any:
    """A build report from ``path`` (as ``read_json`` reads it), refused with a clear error when a newer
    stack-builder wrote it in a format this one does not know."""
    data = read_json(path, what=what, default=default, missing_ok=missing_ok)
    if isinstance(data, dict):
        check_format(data, f"{path} ({what})")
    return data


def check_format(report: dict[str, Any], where: str) -> None:
    """Raise ``StackError`` unless ``report`` is in a format this builder reads (1 when it names none)."""
    found = report.get("format_version", 1)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise StackError(f"{where}: format_version {shown(repr(found))} is not a format version (a whole number "
                         "from 1): the file was not written by stack-builder; delete or repair it")
    if found > FORMAT_VERSION:
        from stack_builder.version import version

        raise StackError(f"{where}: written in build-report format {found} by a newer stack-builder; this one "
                         f"({version()}) reads formats up to {FORMAT_VERSION}: upgrade stack-builder "
                         "(pip install -U stack-builder), or pin the workflows to the version that wrote it")
