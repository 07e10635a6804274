"""`plan`: the plan that `build` would execute, as JSON; in GitHub Actions also as job outputs."""
from __future__ import annotations

import json
from typing import Any

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.errors import StackError
from stack_builder.pipeline import planning
from stack_builder.records.files import write_json

MAX_LEVELS = 5  # level jobs in .github/workflows/main.yml


def main(base_ref: str, all_images: bool, image: list[str], registry: str, platform: str,
         refresh_base: bool = False) -> bool | Failed:
    def work() -> bool:
        config = make_config(registry=registry)
        result = planning.plan_only(config, planning.SelectionOptions(
            base_ref=base_ref, all_images=all_images, images=tuple(image), platform=platform,
            refresh_base=refresh_base)).as_json()
        write_json(config.artifacts / "plan.json", result)
        print(json.dumps(result))
        _github_outputs(result, config.settings.ci.github_output)
        return True

    return run_task(work)


def _github_outputs(plan: dict[str, Any], target: str) -> None:
    """In GitHub Actions (``target``: GITHUB_OUTPUT), hand the plan to later jobs: level0..level4, images, tag."""
    if not target:
        return
    levels = plan["levels"]
    if len(levels) > MAX_LEVELS:
        raise StackError(f"the stack is {len(levels)} levels deep but .github/workflows/main.yml has "
                         f"{MAX_LEVELS} level jobs: add level jobs to the workflow")
    lines = [f"level{i}={json.dumps(levels[i] if i < len(levels) else [])}" for i in range(MAX_LEVELS)]
    lines += [f"images={json.dumps(plan['images'])}", f"tag={plan['tag']}", f"commit_tag={plan['commit_tag'] or ''}"]
    with open(target, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
