"""`gc`: retention that fails closed. Plan what no kept tag reaches (print it, save it), delete exactly that if
nothing moved meanwhile, collect the registry's garbage when asked, then check every tag left to the end."""
from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import Config, make_config
from stack_builder.errors import StackError, shown
from stack_builder.records.files import read_json, utc_now, write_json
from stack_builder.release import gc
from stack_builder.release.gc_rules import KeepRules
from stack_builder.spec.references import DIGEST_RE
from stack_builder.spec.retention import retention_of

LOGGER = logging.getLogger(__name__)
PLAN_FILE = "gc-plan.json"
COMMIT_RE = re.compile(r"[0-9a-f]{12,40}")


def main(dry_run: bool, keep: list[str], keep_commit: list[str], plan: str, builds: int, days: int,
         registry_gc: str, registry: str) -> bool | Failed:
    def work() -> bool:
        config = make_config(registry=registry)
        client = config.registry_client()
        repositories = sorted({image.repository.path for image in config.spec.images.values()})
        if plan and (keep or keep_commit or builds or days != -1):
            raise StackError("--plan applies a plan as it was made: --keep, --keep-commit, --builds and --days "
                             "belong to the plan (gc --dry-run with them), not to its apply")
        rules = _rules(config, keep, keep_commit, builds, days)
        made = _load(Path(plan)) if plan else gc.make_plan(client, repositories, rules, utc_now())
        write_json(config.artifacts / PLAN_FILE, made.as_dict())
        print("\n".join(made.lines()))
        if dry_run:
            print(f"\ndry run: nothing was deleted; the plan is in {config.artifacts / PLAN_FILE} "
                  f"(apply exactly it with: gc --plan {config.artifacts / PLAN_FILE})")
            return True
        deleted = gc.apply(client, made)
        print(f"\ndeleted {deleted} manifest(s)")
        if registry_gc:
            from stack_builder.release.gc_storage import collect_garbage

            storage = collect_garbage(Path(registry_gc))
            print(f"registry garbage collection: storage {gc.size_text(storage.before)} -> "
                  f"{gc.size_text(storage.after)}, {gc.size_text(storage.freed)} freed")
        checked = gc.verify(client, repositories, made)
        if checked.problems:
            for problem in checked.problems:
                print(f"BROKEN: {problem}")
            raise StackError(f"after gc, {len(checked.problems)} problem(s) in what was kept (see above)")
        print(f"checked: every tag left resolves completely ({checked.tags_checked} tags, {checked.manifests_checked} "
              f"manifests, their platforms and referrers, {checked.blobs_checked} blobs)")
        return True

    return run_task(work)


def _rules(config: Config, keep: list[str], keep_commit: list[str], builds: int, days: int) -> KeepRules:
    wrong = [d for d in keep if not DIGEST_RE.fullmatch(d)]
    if wrong:
        raise StackError(f"--keep {shown(wrong[0], 80)} is not a digest: give sha256:<64 lowercase hex>")
    commits = [c for c in keep_commit if not COMMIT_RE.fullmatch(c)]
    if commits:
        raise StackError(f"--keep-commit {shown(commits[0], 80)} is not a commit: give its sha (12 to 40 "
                         "lowercase hex digits)")
    if not 0 <= builds <= 100000:
        raise StackError(f"--builds {builds}: give the number of per-commit builds to keep per branch (1 to 100000; "
                         "0 or none: the spec's retention.builds)")
    if not -1 <= days <= 36500:
        raise StackError(f"--days {days}: give a number of days from 0 to 36500")
    retention = retention_of(config.spec)
    return KeepRules(builds=builds or retention.builds, days=retention.days if days == -1 else days,
                     keep=frozenset(keep), keep_commits=frozenset(c[:12] for c in keep_commit), now=datetime.fromisoformat(utc_now().replace("Z", "+00:00")))


def _load(path: Path) -> gc.GcPlan:
    data = read_json(path, what="a gc plan", missing_ok=False)
    if not isinstance(data, dict):
        raise StackError(f"{path}: not a gc plan: make one with gc --dry-run")
    return gc.GcPlan.from_dict(data, str(path))
