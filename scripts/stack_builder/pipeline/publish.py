"""An image's last step: decide its status from its platforms, then push, assemble the index, record.

Only an image whose every required platform passed its tests is pushed. The digest is read back
from the registry and compared; a model image's check results are stored as a gate record bound
to that digest; and what is inside the image is recorded for the wiki.
"""
from __future__ import annotations

import logging
import traceback
from typing import IO

from stack_builder.engine import images
from stack_builder.engine.push import push
from stack_builder.errors import RegistryError, StepFailed
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.plan.plan import ParentRef
from stack_builder.records import gates, manifests
from stack_builder.records.report import BUILT, FAILED, ImageResult
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.registry import multiarch
from stack_builder.spec.references import Repository
from stack_builder.spec.stack_spec import ImageSpec

LOGGER = logging.getLogger(__name__)


def finalise(ctx: BuildContext, name: str) -> bool:
    """Decide the image's status from its platforms, then publish it. Never raises; True when it is published."""
    image = ctx.spec.images[name]
    outcomes = ctx.outcomes.get(name, {})
    ordered = [outcomes[p] for p in ctx.plan.platforms[name] if p in outcomes]
    built = [o for o in ordered if o.ok]
    failed = {o.platform: o.reason for o in ordered if not o.ok}
    log_path = ctx.log_path(name, ordered[0].platform if len(ordered) == 1 else None)
    if not ordered:  # the plan gave it no platform to build, so nothing was tried
        ctx.report.update(name, ctx.artifacts, status=FAILED, duration_s=0.0,
                          reason=f"no platform of {name} is built in this run")
        return False
    fields = _fields(ctx, name, ordered, built, failed)
    if not built or (failed and image.require_all_platforms):
        why = "; ".join(f"{p}: {r}" for p, r in failed.items()) if ctx.multi(name) else next(iter(failed.values()))
        if built:
            why = f"require_all_platforms: {why}"
        ctx.report.update(name, ctx.artifacts, status=FAILED, reason=why, duration_s=ctx.duration(name), **fields)
        return False
    try:
        with log_path.open("a", encoding="utf-8") as log:
            result = _publish(ctx, name, built, log, fields)
    except StepFailed as exc:
        ctx.report.update(name, ctx.artifacts, status=FAILED, reason=str(exc), duration_s=ctx.duration(name),
                          **fields)
        LOGGER.error("%s: FAILED: %s (log: %s)", name, exc, log_path)
        return False
    except Exception as exc:  # our bug: the image fails, the traceback goes to its log
        with log_path.open("a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        ctx.report.update(name, ctx.artifacts, status=FAILED, duration_s=ctx.duration(name),
                          reason=f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})", **fields)
        LOGGER.exception("%s: internal error", name)
        return False
    result.duration_s = ctx.duration(name)
    ctx.report.update(name, ctx.artifacts, **vars(result))
    note = f" [{', '.join(result.platforms_built)}]" if ctx.multi(name) else ""
    LOGGER.info("%s: %s in %.1fs -> %s%s", name, "built and pushed" if ctx.push else "built",
                result.duration_s, result.ref, note)
    return True


def _fields(ctx: BuildContext, name: str, ordered: list[PlatformOutcome], built: list[PlatformOutcome],
            failed: dict[str, str]) -> dict[str, object]:
    return {
        "image_id": built[0].image_id if built else None,
        "parent": built[0].parent if built else None,
        "tests": TestCounts.total({o.platform: o.tests for o in ordered if o.tests.junit}),
        "model": ModelResult.merged({o.platform: o.model for o in ordered if o.model is not None}),
        "log": str(ctx.log_path(name, ordered[0].platform if len(ordered) == 1 else None)),
        "platforms_built": [o.platform for o in built],
        "platforms_failed": failed,
    }


def _publish(ctx: BuildContext, name: str, built: list[PlatformOutcome], log: IO[str],
             fields: dict[str, object]) -> ImageResult:
    image = ctx.spec.images[name]
    repo = ctx.repository(name)
    tags = ctx.plan.tags()
    result = ImageResult(BUILT, ctx.plan.reasons[name], ref=f"{repo}:{ctx.plan.tag}", tags=list(tags))
    for key, value in fields.items():
        setattr(result, key, value)
    if not ctx.push:
        for outcome in built:
            # By its local name: BuildKit finds local images by name (for the engine's own platform).
            local = multiarch.platform_tag(ctx.plan.tag, outcome.platform) if ctx.multi(name) else ctx.plan.tag
            ctx.parent_for_children(name, outcome.platform, ParentRef(f"{repo}:{local}", ctx.plan.tag,
                                                                       "built in this run (not pushed)"))
        _manifest(ctx, image, result, log)
        return result
    if ctx.multi(name):
        for outcome in built:
            tag = multiarch.platform_tag(ctx.plan.tag, outcome.platform)
            outcome.digest = _push_verified(ctx, repo, tag, log)
            ctx.parent_for_children(name, outcome.platform, ParentRef(f"{repo}@{outcome.digest}", ctx.plan.tag,
                                                                       "built in this run"))
        if ctx.plan.platform:
            # One platform of a CI fan-out: `merge` assembles the index when every platform is pushed.
            only = built[0]
            result.ref, result.digest = f"{repo}:{multiarch.platform_tag(ctx.plan.tag, only.platform)}", only.digest
            result.tags = [multiarch.platform_tag(ctx.plan.tag, only.platform)]
        else:
            entries = [multiarch.Entry(o.platform, str(o.digest), "", 0) for o in built]
            try:
                result.digest = multiarch.publish_index(ctx.registry, repo.path, tags, entries)
            except RegistryError as exc:
                raise StepFailed(f"index not published: {exc}") from None
    else:
        digest = _push_verified(ctx, repo, tags[0], log)
        for tag in tags[1:]:
            other = _push_verified(ctx, repo, tag, log)
            if other != digest:
                raise StepFailed(f"tags of one image pushed with different digests ({digest} vs {other})")
        result.digest = digest
        ctx.parent_for_children(name, built[0].platform, ParentRef(f"{repo}@{digest}", ctx.plan.tag,
                                                                   "built in this run"))
    if result.model is not None and result.digest:
        # Gates bind check results to the exact digest that was pushed (the index, when there is one).
        result.model.digest = result.digest
        _record_model_gate(ctx, name, repo, result.digest, result.model, log)
    _manifest(ctx, image, result, log)
    if image.prune:
        _prune(ctx, image, built, log)
    return result


def _push_verified(ctx: BuildContext, repo: Repository, tag: str, log: IO[str]) -> str:
    digest = push(ctx.engine, str(repo), tag, auth=ctx.auth(), log=log, policy=ctx.push_policy)
    try:
        found = ctx.registry.manifest_digest(repo.path, tag)
    except RegistryError as exc:
        raise StepFailed(f"pushed {repo}:{tag} but could not read it back: {exc}") from None
    if found != digest:
        raise StepFailed(f"registry has {found or 'nothing'} for {repo}:{tag}, but {digest} was pushed")
    return digest


def model_gate_record(name: str, model: ModelResult) -> gates.GateRecord:
    details: dict[str, object] = {"drift_status": model.drift.status, "functional": model.functional.checks,
                                  "drift": model.as_dict()["drift"]}
    if model.platforms:
        details["platforms"] = {p: {"passed": r.passed, "summary": r.summary()} for p, r in model.platforms.items()}
    return gates.GateRecord(gates.MODEL, name, passed=model.passed, summary=model.summary(), details=details)


def _record_model_gate(ctx: BuildContext, name: str, repo: Repository, digest: str, model: ModelResult,
                       log: IO[str]) -> None:
    try:
        gates.write_record(ctx.registry, repo.path, digest, model_gate_record(name, model))
        model.recorded = True
    except RegistryError as exc:
        # The image is published; without the record a promotion will refuse it, and say why.
        model.recorded = False
        log.write(f"WARNING: model check record not stored: {exc}\n")
        LOGGER.warning("%s: model check record not stored (promotion will refuse it): %s", name, exc)


def _manifest(ctx: BuildContext, image: ImageSpec, result: ImageResult, log: IO[str]) -> None:
    """Record what is inside the image. The image is already published: a failure here is a warning."""
    facts = manifests.BuildFacts(image=image.name, tag=ctx.plan.commit_tag or ctx.plan.tag, ref=result.ref or "",
                                 digest=result.digest, commit=ctx.revision.commit, branch=ctx.revision.branch,
                                 commit_url=ctx.revision.commit_url(), parent=result.parent,
                                 platforms=tuple(result.platforms_built))
    commands = {key: ctx.spec.all_info_cmds[key] for key in image.info_cmds}
    try:
        record = manifests.collect(ctx.engine, result.image_id or "", facts, commands)
    except StepFailed as exc:
        log.write(f"WARNING: {exc}\n")
        LOGGER.warning("%s: %s", image.name, exc)
        return
    manifests.save(record, [ctx.artifacts / "manifests"])
    if ctx.wiki is not None:
        with ctx.wiki_lock:
            result.manifest = ctx.wiki.add_manifest(record)
    else:
        result.manifest = manifests.record_name(record)


def _prune(ctx: BuildContext, image: ImageSpec, built: list[PlatformOutcome], log: IO[str]) -> None:
    """prune: the image is in the registry now; remove its local tags so the engine's disk is freed."""
    names = {str(ctx.repository(image.name)), str(image.repository)}
    tags = [multiarch.platform_tag(ctx.plan.tag, o.platform) for o in built] if ctx.multi(image.name) \
        else ctx.plan.tags()
    removed = images.remove(ctx.engine, [f"{n}:{t}" for n in sorted(names) for t in tags])
    log.write(f"== prune: removed {', '.join(removed) or 'nothing'}\n")
    LOGGER.info("%s: pruned %d local tags", image.name, len(removed))
