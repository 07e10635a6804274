"""`wiki`: re-render Home.md, Stable_Tag.md and Models.md (with the model images of artifacts/build-report.json,
when there is one), fold old pages over the cap, and check every link."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.records.report import read_report
from stack_builder.records.wiki import Wiki, rerender


def main() -> bool | Failed:
    def work() -> bool:
        config = make_config(uses_registry=False)
        report = read_report(config.artifacts / "build-report.json", what="the run's build report", default=None)
        if isinstance(report, dict) and report.get("pushed"):  # (CI: the run's report, from the merge job)
            Wiki(config.wiki_dir).record_models(config.spec, report)
        pages = rerender(config.spec, config.wiki_dir)
        print(f"wiki: {pages} pages in {config.wiki_dir}, all links resolve")
        return True

    return run_task(work)
