"""`wiki`: re-render Home.md and Stable_Tag.md, fold old pages over the cap, and check every link."""
from __future__ import annotations

from doit.exceptions import TaskFailed

from stack_builder.apps.runtime import run_task
from stack_builder.config import make_config
from stack_builder.records.wiki import rerender


def main() -> bool | TaskFailed:
    def work() -> bool:
        config = make_config(uses_registry=False)
        pages = rerender(config.spec, config.wiki_dir)
        print(f"wiki: {pages} pages in {config.wiki_dir}, all links resolve")
        return True

    return run_task(work)
