"""`yank`: revoke a published digest: record why, remove the tags on it, mark the wiki."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.release.yank import yank


def main(image: str, digest: str, reason: str, dry_run: bool, registry: str) -> bool | Failed:
    def work() -> bool:
        plan = yank(make_config(registry=registry), image, digest, reason, dry_run=dry_run)
        print("\n".join(plan.lines()))
        if dry_run:
            print("\ndry run: nothing was recorded or removed")
        else:
            removed = sum(len(t) for t in plan.tags.values())
            print(f"\nyanked: {len(plan.digests)} digest(s) recorded as revoked, {removed} tag(s) removed; "
                  "promotion, rollback and reuse refuse them from now on")
        hint = plan.rollback_hint()
        if hint:
            print(f"\nWARNING: {hint}")
        return True

    return run_task(work)
