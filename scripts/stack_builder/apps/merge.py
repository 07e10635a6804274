"""`merge`: assemble the multi-platform indexes registry-side from the per-platform tags."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tabulate import tabulate

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.pipeline.merge import Merged, merge, planned_images
from stack_builder.plan.revision import read_revision
from stack_builder.records.files import write_json
from stack_builder.records.report import merge_reports, read_report
from stack_builder.registry.signing import Signing

LOGGER = logging.getLogger(__name__)


def main(image: list[str], registry: str, reports: str) -> bool | Failed:
    def work() -> bool:
        config = make_config(registry=registry)
        if reports:
            merge_job_reports(Path(reports), config.artifacts)
        spec = config.spec
        spec.require(image)
        names = list(image) or planned_images(config.artifacts) or list(spec.images)
        client = config.registry_client()
        results = merge(spec, read_revision(config.stack_dir), client, config.registry, names,
                        signing=Signing.from_settings(config.settings), content_tags=_report_field(config.artifacts, "content_tags"),
                        example_outputs=_report_field(config.artifacts, "example_outputs"))
        rows = [[r.image, "merged" + (" (NOT SIGNED)" if r.unsigned else ""), ", ".join(r.platforms) + _stale(r.stale),
                 r.digest[:19]] if r.merged else
                [r.image, "not merged", f"missing {', '.join(r.missing)}" + _stale(r.stale), ""] for r in results]
        print(tabulate(rows, headers=["image", "index", "platforms", "digest"]) if rows else
              "no multi-platform image to merge")
        _record_indexes(config.artifacts, results)
        for result in results:
            for platform, why in result.disagreeing:
                print(f"{result.image}: {platform} left out: {why}")
            if result.unsigned:
                print(f"{result.image}: the index is published but not signed: {result.unsigned}")
        return all(r.merged and not r.unsigned for r in results)

    return run_task(work)


def _record_indexes(artifacts: Path, results: list[Merged]) -> None:
    """The run's report says what `merge` made: each merged image's index digest and platforms, and the platforms
    left out, so the wiki and the model catalog read the index, not one job's platform image."""
    path = artifacts / "build-report.json"
    report = read_report(path, what="the run's build report", default=None)
    if not isinstance(report, dict) or not isinstance(report.get("images"), dict):
        return
    for result in results:
        entry = report["images"].get(result.image)
        if not isinstance(entry, dict):
            continue
        if result.merged:
            entry.update(digest=result.digest, platforms_built=list(result.platforms))
        entry["platforms_failed"] = {**(entry.get("platforms_failed") or {}), **dict(result.disagreeing)}
        entry["platforms_disagreeing"] = sorted({*(entry.get("platforms_disagreeing") or []),
                                                 *(platform for platform, _ in result.disagreeing)})
    write_json(path, report)


def _report_field(artifacts: Path, key: str) -> dict[str, Any]:
    """Each image's ``key`` as its platform jobs reported it (merged into this run's report): its content tags,
    or its example outputs per platform."""
    report = read_report(artifacts / "build-report.json", what="the run's build report", default={})
    images = report.get("images") if isinstance(report, dict) else None
    return {str(name): result.get(key) or {} for name, result in (images or {}).items() if isinstance(result, dict)}


def _stale(platforms: tuple[str, ...]) -> str:
    return f" (left out, from another commit: {', '.join(platforms)})" if platforms else ""


def merge_job_reports(folder: Path, artifacts: Path) -> None:
    """The CI jobs' reports (``folder/**/build-report.json``) as one ``artifacts/build-report.json``."""
    found = sorted(folder.rglob("build-report.json")) if folder.is_dir() else []
    if not found:
        LOGGER.warning("no build-report.json under %s: no run report to merge", folder)
        return
    merged = merge_reports([read_report(path, what="a CI job's build report", missing_ok=False) for path in found])
    write_json(artifacts / "build-report.json", merged)
    LOGGER.info("merged %d job reports into %s", len(found), artifacts / "build-report.json")
