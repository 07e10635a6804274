"""`tag`: one promotion or rollback, from plan to record. Plan every move through the gates, then move every
tag or say exactly which moved; each move is added to the registry's promotion history as it happens,
and a real run writes artifacts/promotion.json, IMAGES_TAGGED and a row in the wiki."""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from stack_builder import signals
from stack_builder.config import Config
from stack_builder.errors import RegistryError, StackError
from stack_builder.release import rollback
from stack_builder.release.promote import (ALREADY, MOVED, Move, PromotionIncomplete, PromotionRefused, execute,
                                            parse_tag, plan, who)
from stack_builder.records import promotions
from stack_builder.records.files import utc_now, write_json, write_lines
from stack_builder.records.runs import RunKind, StableKind
from stack_builder.records.wiki import Wiki
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PromoteOptions:
    tag: str
    global_stable: bool
    dry_run: bool
    skip_gpu_test: bool
    allow_platform_drop: bool = False
    rollback: bool = False


@dataclass(frozen=True)
class Promoted:
    moves: list[Move]
    run: RunKind  # PROMOTION or ROLLBACK
    stable: StableKind

    @property
    def kind(self) -> str:
        """What was done, as shown: "global stable", "quarter stable", or a rollback of one."""
        return f"rollback of {self.stable}" if self.run is RunKind.ROLLBACK else str(self.stable)


def check_options(options: PromoteOptions) -> None:
    """A malformed --tag stops here, before the registry is asked."""
    if options.rollback:
        rollback.target_of(options.tag, global_stable=options.global_stable)
    else:
        parse_tag(options.tag, global_stable=options.global_stable)


def promotion_id(target: str, moves: list[Move]) -> str:
    """Every image moved together shares this id; the same promotion re-run (to complete it) gets the same."""
    text = target + "\n" + "\n".join(sorted(f"{m.image}={m.source_digest}" for m in moves))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record(moves: list[Move], *, options: PromoteOptions, host: str, outcome: str, run_id: str,
           registry_stats: dict[str, int] | None = None) -> dict[str, Any]:
    return {"time": utc_now(), "by": who(), "tag": options.tag, "id": run_id, "rollback": options.rollback,
            "registry": host, "global_stable": options.global_stable, "skip_gpu_test": options.skip_gpu_test,
            "outcome": outcome, "registry_stats": dict(registry_stats or {}), "moves": [m.as_record() for m in moves]}


def _planned(config: Config, registry: RegistryClient, options: PromoteOptions,
             signing: Signing | None) -> tuple[list[Move], str | None]:
    """The moves a promotion (or a rollback, with the promotion it undoes) would make; raises if refused."""
    reachable = _in_checkout(config)
    if options.rollback:
        target = rollback.target_of(options.tag, global_stable=options.global_stable)
        return rollback.plan(config.spec, registry, config.registry, target, skip_gpu_test=options.skip_gpu_test,
                             allow_platform_drop=options.allow_platform_drop, signing=signing,
                             on_trusted_ref=reachable)
    return plan(config.spec, registry, config.registry, options.tag, global_stable=options.global_stable,
                skip_gpu_test=options.skip_gpu_test, allow_platform_drop=options.allow_platform_drop,
                signing=signing, on_trusted_ref=reachable), None


def _in_checkout(config: Config) -> Callable[[str], bool]:
    """Whether a commit is in the history of the checkout the promotion runs in (in CI, the trusted ref): then
    what a branch job built and tested at that commit, and main reused by a fast-forward merge, may be
    promoted on that job's statements."""
    def reachable(commit: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            return False
        from stack_builder.plan.changes import open_repo  # git: only when a branch statement is considered
        try:
            repo = open_repo(config.stack_dir)
            return bool(repo.is_ancestor(repo.commit(commit), repo.head.commit))
        except Exception:  # no repository, an unknown commit: not on the trusted ref
            return False
    return reachable


def promote_stack(config: Config, options: PromoteOptions) -> Promoted:
    spec = config.spec
    registry = config.registry_client()
    stable = StableKind.of(options.global_stable)
    run = RunKind.ROLLBACK if options.rollback else RunKind.PROMOTION
    signing = Signing.from_settings(config.settings)
    undo: str | None = None
    run_id = ""

    def write(moves: list[Move], outcome: str) -> None:
        write_json(config.artifacts / "promotion.json", record(
            moves, options=options, host=config.registry, outcome=outcome, run_id=run_id,
            registry_stats=registry.stats))
        write_lines(config.artifacts / "IMAGES_TAGGED", [f"{config.registry}/{m.repository}:{m.target_tag}"
                                                         for m in moves if m.state in (MOVED, ALREADY)])

    try:
        moves, undo = _planned(config, registry, options, signing)
    except PromotionRefused:
        if not options.dry_run:
            write([], "refused")
        raise
    if options.dry_run:
        return Promoted(moves, run, stable)
    target = moves[0].target_tag if moves else ""
    run_id = promotion_id(target, moves)
    now = utc_now()

    unrecorded: list[str] = []

    def remember(move: Move) -> None:
        """Add the move to the tag's history; a failure there does not undo the move, and is reported."""
        try:
            promotions.append(registry, move.repository, move.target_tag, promotions.Entry(
                id=run_id, kind=RunKind.ROLLBACK if undo else RunKind.PROMOTION, time=now, by=who(),
                source=f"undo {undo}" if undo else move.source_tag, before=move.target_before,
                after=str(move.source_digest), undoes=undo, stamp=time.time_ns()))
        except RegistryError as exc:
            unrecorded.append(f"{move.repository}:{move.target_tag} ({exc})")

    outcome = "complete"
    try:
        with signals.handling():
            execute(moves, registry, on_moved=remember)
    except PromotionIncomplete:
        outcome = f"interrupted by {signals.signal_name()}" if signals.stopping() else "incomplete"
        raise
    finally:
        write(moves, outcome)
    _record_in_wiki(Wiki(config.wiki_dir), spec, moves, options, config.registry, undo=undo)
    if unrecorded:
        raise StackError(f"every tag moved, but the promotion history could not be written for: "
                         f"{'; '.join(unrecorded)}. A rollback will not know about these moves: roll them back by "
                         "hand if needed (artifacts/promotion.json has the digests before and after)")
    return Promoted(moves, run, stable)


def _record_in_wiki(pages: Wiki, spec: Spec, moves: list[Move], options: PromoteOptions, host: str, *,
                    undo: str | None) -> None:
    now = utc_now()
    if options.global_stable:
        earlier = (pages.stable() or {}) if undo else {}  # a rollback moves only the images of one promotion
        pages.set_stable({"tag": f"rollback (undid promotion {undo})" if undo else options.tag, "time": now,
                          "by": who(), "skip_gpu_test": options.skip_gpu_test,
                          "images": {**(earlier.get("images") or {}), **{m.image: m.source_digest for m in moves}},
                          "repositories": {**(earlier.get("repositories") or {}),
                                           **{m.image: f"{host}/{m.repository}" for m in moves}}})
    if undo or not options.global_stable:
        # A promotion is identified by what it moved: the same digests promoted again replace the row.
        target = moves[0].target_tag if moves else options.tag
        label = f"rollback of {target} (undid promotion {undo})" if undo else \
            (f"{moves[0].source_tag} → {target}" if moves else options.tag)
        pages.record_build({
            "commit": ",".join(sorted({str(m.source_digest) for m in moves})), "commit_url": None,
            "label": label, "branch": moves[0].source_tag if moves and not undo else "", "tag": target,
            "time": now, "kind": (RunKind.ROLLBACK if undo else RunKind.PROMOTION).value,
            "gpu_test_skipped": options.skip_gpu_test,
            "images": [{"name": m.image, "tag": m.target_tag, "page": pages.page_for_digest(m.source_digest)}
                       for m in moves]})
    for move in moves:
        if spec.images[move.image].model is not None and move.source_digest:
            pages.update_model(move.image, {"digests": {move.target_tag: move.source_digest}})
    pages.render(spec)
