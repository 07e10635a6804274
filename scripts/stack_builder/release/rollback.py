"""Rollback planning: a stable tag back to the digests it held before its last promotion.

The promotion history in the registry says, per repository, which promotion moved the tag last and
from which digest. A rollback moves every repository of that promotion back, through the same gates
as a promotion (GPU and model records, signatures, yanks, the parent set, platforms) and the same
race checks: the tag must still hold what the promotion put there.
"""
from __future__ import annotations

import logging
from typing import Callable

from stack_builder.errors import StackError
from stack_builder.release import promote
from stack_builder.release.promote import Move, PromotionRefused
from stack_builder.records import promotions, revocations
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


def target_of(tag: str, *, global_stable: bool) -> str:
    """The tag a rollback moves: ``stable``, or ``YYYY.Q-stable`` for ``--tag YYYY.Q``."""
    if global_stable:
        if tag:
            raise StackError(f"--rollback --global-stable takes no --tag (got '{tag[:40]}'): it undoes the last move "
                             "of `stable`")
        return "stable"
    if not promote.QUARTER_RE.fullmatch(tag):
        raise StackError(f"--rollback needs --tag YYYY.Q (Q from 1 to 4), e.g. --tag 2024.1 for 2024.1-stable, or "
                         f"--global-stable for `stable`; got '{tag[:40]}'")
    return f"{tag}-stable"


def plan(spec: Spec, registry: RegistryClient, host: str, target: str, *, skip_gpu_test: bool,
         allow_platform_drop: bool, signing: Signing | None,
         on_trusted_ref: Callable[[str], bool] | None = None) -> tuple[list[Move], str]:
    """(moves, id of the promotion they undo). Raises ``PromotionRefused`` listing every problem."""
    histories = {name: promotions.read(registry, image.repository.on(host).path, target)
                 for name, image in spec.images.items()}
    live = {name: promotions.last_live(h) for name, h in histories.items()}
    latest = [e for e in live.values() if e is not None]
    if not latest:
        raise StackError(f"no promotion of {target} is recorded in registry {host} (or every one was rolled back "
                         "already): nothing to roll back")
    undo = max(latest, key=lambda e: (e.time, e.stamp)).id
    moves: list[Move] = []
    for name, image in spec.images.items():
        entry = live[name]
        if entry is None or entry.id != undo:
            continue
        repository = image.repository.on(host).path
        move = Move(image=name, repository=repository, source_tag=entry.before or "(none)", target_tag=target)
        moves.append(move)
        move.target_before = registry.manifest_digest(repository, target)
        if entry.before is None:
            move.problems.append(f"{target} did not exist before promotion {undo}: there is nothing to roll back to")
            continue
        if move.target_before != entry.after and not (
                move.target_before is None and revocations.read(registry, repository, entry.after) is not None):
            move.problems.append(f"{target} is {promote.short(move.target_before)} now, not "
                                 f"{promote.short(entry.after)} as promotion {undo} left it: it moved since; "
                                 "refusing to roll back over it")
        manifest = registry.get_manifest(repository, entry.before)
        if manifest is None:
            revoked = revocations.read(registry, repository, entry.before)
            move.problems.append(revoked.describe() if revoked else f"{entry.before} is no longer in the registry")
            continue
        move.source_digest, move.media_type, move.body = manifest.digest, manifest.media_type, manifest.body
        promote.check_not_yanked(registry, move)
        promote.check_gates(registry, move, gpu=image.gpu, model=image.model is not None, skip_gpu_test=skip_gpu_test)
    promote.check_set(spec, registry, moves, allow_platform_drop=allow_platform_drop)
    if signing is not None:
        promote.check_signatures(signing, registry, host, moves, on_trusted_ref=on_trusted_ref)
    problems = [f"{m.image}: {p}" for m in moves for p in m.problems]
    if problems:
        raise PromotionRefused(f"rollback of {target} refused; no tag was moved:\n  " + "\n  ".join(problems) +
                               "\n" + promote.table(moves))
    return moves, undo
