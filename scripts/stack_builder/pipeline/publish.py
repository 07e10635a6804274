"""An image's last step: decide its status from its platforms, then push, assemble the index, record.

Only an image whose every required platform passed its tests is pushed. The digest is read back
from the registry and compared; a model image's check results are stored as a gate record bound
to that digest; and what is inside the image is recorded for the wiki.

A reused platform (its input key was already published) is not pushed: its manifest is put under
this run's tags registry-side, so the digest, and every gate record bound to it, stay the same.
"""
from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import IO, Any

from stack_builder import signals
from stack_builder.engine import images
from stack_builder.engine.push import push
from stack_builder.errors import GitError, Interrupted, RegistryError, StepFailed
from stack_builder.pipeline import agreement, attest
from stack_builder.pipeline.image_job import RECIPE_LABEL
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.plan.changes import open_repo
from stack_builder.plan.plan import ParentRef
from stack_builder.records import gates, junit, manifests
from stack_builder.records.logfile import open_log
from stack_builder.records.report import BUILT, FAILED, INTERRUPTED, REUSED, ImageResult
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.registry import multiarch
from stack_builder.registry.credentials import redact_all
from stack_builder.registry.mediatypes import INDEX_TYPES
from stack_builder.spec.references import Repository
from stack_builder.spec.stack_spec import ImageSpec

LOGGER = logging.getLogger(__name__)


def finalise(ctx: BuildContext, name: str) -> bool:
    """Decide the image's status from its platforms, then publish it. Never raises; True when it is published.
    Its steps are written as JUnit test cases too, for a test reporter."""
    published = _finalise(ctx, name)
    result = ctx.report.images[name]
    ctx.enter(name, f"done: {result.status}" + (f" ({result.reason})" if not published else ""))
    try:
        junit.write_steps(ctx.artifacts / "junit" / f"{name}-steps.xml", name, _step_cases(ctx, name))
    except OSError as exc:
        LOGGER.warning("%s: the JUnit file of its steps was not written: %s", name, exc)
    return published


def _step_cases(ctx: BuildContext, name: str) -> list[junit.Case]:
    result = ctx.report.images[name]
    cases = []
    for platform in ctx.plan.platforms[name]:
        outcome = ctx.outcomes.get(name, {}).get(platform)
        if outcome is None:
            cases.append(junit.Case(f"build and tests ({platform})", junit.SKIPPED, result.reason))
        elif outcome.reused_from:
            cases.append(junit.Case(f"build and tests ({platform})", junit.SKIPPED,
                                    f"reused from {outcome.reused_from}: built and tested before"))
        else:
            cases.append(junit.Case(f"build and tests ({platform})", junit.PASSED if outcome.ok else junit.FAILED,
                                    outcome.reason))
    if ctx.spec.images[name].model is not None:
        model = result.model
        cases.append(junit.Case("model checks", junit.SKIPPED if model is None else
                                junit.PASSED if model.passed else junit.FAILED, model.summary() if model else ""))
    if ctx.push:
        pushed = result.status in (BUILT, REUSED)
        tried = bool(result.moved) or pushed
        cases.append(junit.Case("push and read back", junit.PASSED if pushed else
                                junit.FAILED if tried else junit.SKIPPED, "" if pushed else result.reason))
    return cases


def _finalise(ctx: BuildContext, name: str) -> bool:
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
    built, failed = agreement.agreeing(ctx, name, built, failed)
    fields = _fields(ctx, name, ordered, built, failed)
    if signals.stopping() or any(o.interrupted for o in ordered):
        why = next((o.reason for o in ordered if o.interrupted),
                   f"interrupted by {signals.signal_name()} before it was pushed")
        ctx.report.update(name, ctx.artifacts, status=INTERRUPTED, reason=why, duration_s=ctx.duration(name),
                          **fields)
        return False
    if not built or (failed and image.require_all_platforms):
        why = "; ".join(f"{p}: {r}" for p, r in failed.items()) if ctx.multi(name) else next(iter(failed.values()))
        if built:
            why = f"require_all_platforms: {why}"
        ctx.report.update(name, ctx.artifacts, status=FAILED, reason=why, duration_s=ctx.duration(name), **fields)
        return False
    ctx.enter(name, "the push" if ctx.push else "the manifest record")
    try:
        with open_log(log_path) as log:
            result = _publish(ctx, name, built, log, fields)
    except Interrupted:
        ctx.report.update(name, ctx.artifacts, status=INTERRUPTED, duration_s=ctx.duration(name), **fields,
                          moved=dict(ctx.moved.get(name, {})),
                          reason=f"interrupted by {signals.signal_name()} during the push: nothing more was pushed")
        return False
    except StepFailed as exc:
        moved = dict(ctx.moved.get(name, {}))
        why = str(exc) + (f" (moved before the failure: {', '.join(moved)})" if moved else "")
        ctx.report.update(name, ctx.artifacts, status=FAILED, reason=why, duration_s=ctx.duration(name),
                          moved=moved, notes=list(ctx.notes.get(name, [])), **fields)
        LOGGER.error("%s: FAILED: %s (log: %s)", name, why, log_path)
        return False
    except Exception as exc:  # our bug: the image fails, the traceback goes to its log
        with open_log(log_path) as log:
            log.write(redact_all(traceback.format_exc()))
        ctx.report.update(name, ctx.artifacts, status=FAILED, duration_s=ctx.duration(name),
                          reason=f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})", **fields)
        LOGGER.exception("%s: internal error", name)
        return False
    result.duration_s = ctx.duration(name)
    ctx.report.update(name, ctx.artifacts, **vars(result))
    note = f" [{', '.join(result.platforms_built)}]" if ctx.multi(name) else ""
    done = f"reused from {result.reused_from}" if result.status == REUSED else \
        "built and pushed" if ctx.push else "built"
    LOGGER.info("%s: %s in %.1fs -> %s%s", name, done, result.duration_s, result.ref, note)
    return True


def _fields(ctx: BuildContext, name: str, ordered: list[PlatformOutcome], built: list[PlatformOutcome],
            failed: dict[str, str]) -> dict[str, object]:
    return {
        # The first platform built here (a reused one has no local image): the manifest container runs on it.
        "image_id": next((o.image_id for o in built if not o.reused_from), built[0].image_id) if built else None,
        "parent": built[0].parent if built else None,
        "input_key": built[0].input_key if built and not ctx.multi(name) else None,
        "input_keys": {o.platform: o.input_key for o in ordered if o.input_key} if ctx.multi(name) else {},
        "tests": TestCounts.total({o.platform: o.tests for o in ordered if o.tests.junit}),
        "model": ModelResult.merged({o.platform: o.model for o in ordered if o.model is not None}),
        "log": str(ctx.log_path(name, ordered[0].platform if len(ordered) == 1 else None)),
        "platforms_built": [o.platform for o in built],
        "example_outputs": {o.platform: o.model.functional.output for o in built
                            if o.model is not None and o.model.functional.output},
        "recipe": next((o.recipe for o in built if o.recipe), None),
        "recipes_failed": {(f"{r} ({o.platform})" if ctx.multi(name) else r): why
                           for o in ordered for r, why in o.recipes_failed.items()},
        "platforms_failed": failed,
    }


def _publish(ctx: BuildContext, name: str, built: list[PlatformOutcome], log: IO[str],
             fields: dict[str, object]) -> ImageResult:
    image = ctx.spec.images[name]
    repo = ctx.repository(name)
    tags = ctx.plan.tags()
    sources = {o.reused_from for o in built}
    reused = None not in sources
    result = ImageResult(REUSED if reused else BUILT, ctx.plan.reasons[name], ref=f"{repo}:{ctx.plan.tag}",
                         tags=list(tags))
    for key, value in fields.items():
        setattr(result, key, value)
    if reused:
        result.reused_from = ", ".join(f"{repo}:{s}" for s in sorted(str(s) for s in sources))
        result.reason = f"{result.reason}; same input key as {result.reused_from}"
    # What is inside the image is asked before anything is pushed: a bad content tag stops the image here.
    record = None if reused else _collect(ctx, image, result, log)
    if record is not None:
        result.content_tags = attest.content_tags(ctx.plan.tag, record)
    if not ctx.push:
        for outcome in built:
            # By its local name: BuildKit finds local images by name (for the engine's own platform).
            local = multiarch.platform_tag(ctx.plan.tag, outcome.platform) if ctx.multi(name) else ctx.plan.tag
            ctx.parent_for_children(name, outcome.platform, ParentRef(f"{repo}:{local}", ctx.plan.tag,
                                                                       "built in this run (not pushed)"))
        if record is not None:
            record["tags"] = [*tags, *result.content_tags]
            _save_manifest(ctx, record, result)
        return result
    if ctx.multi(name):
        for outcome in built:
            # The per-commit platform tag says which commit's job published it: `merge` reads those.
            platform_tags = [multiarch.platform_tag(t, outcome.platform) for t in tags]
            outcome.digest = _put_tags(ctx, name, repo, platform_tags, log,
                                       digest=outcome.digest if outcome.reused_from else None)
            ctx.parent_for_children(name, outcome.platform, ParentRef(f"{repo}@{outcome.digest}", ctx.plan.tag,
                                                                       "published in this run"))
        if ctx.plan.platform:
            # One platform of a CI fan-out: `merge` assembles the index when every platform is pushed.
            only = built[0]
            result.ref, result.digest = f"{repo}:{multiarch.platform_tag(ctx.plan.tag, only.platform)}", only.digest
        else:
            ctx.enter(name, "the index")
            result.digest = _index(ctx, name, built, tags, log, source=sources.pop() if len(sources) == 1 else None)
    else:
        only = built[0]
        digest = _put_tags(ctx, name, repo, tags, log, digest=only.digest if only.reused_from else None)
        only.digest = result.digest = digest
        ctx.parent_for_children(name, only.platform, ParentRef(f"{repo}@{digest}", ctx.plan.tag,
                                                               "published in this run"))
    platform_digests = {o.platform: str(o.digest) for o in built if o.digest}
    if reused and image.recipes and ctx.lookups is not None and platform_digests:  # the recipe its build used
        first = next(iter(platform_digests.values()))
        try:
            result.recipe = ctx.lookups.labels(repo.path, first).get(RECIPE_LABEL) or None
        except RegistryError:
            result.recipe = None
    if reused and result.digest and ctx.lookups is not None:  # the tags its first build worked out, carried over
        result.content_tags = attest.inherited_content_tags(ctx.lookups, image, repo.path, ctx.plan.tag,
                                                            result.digest)
    if result.content_tags and result.digest and not (ctx.plan.platform and ctx.multi(name)):
        # (one platform of a multi-platform image: `merge` puts them on the index)
        _put_tags(ctx, name, repo, result.content_tags, log, digest=result.digest)
    if ctx.signing is not None:
        ctx.enter(name, "signing")
        result.signed = attest.sign(ctx, name, repo, [*platform_digests.values(), str(result.digest)], log,
                                    only_unsigned=reused)
    result.tags = [t for t, d in ctx.moved.get(name, {}).items() if d == result.digest]
    result.moved = dict(ctx.moved.get(name, {}))
    result.notes = list(ctx.notes.get(name, []))
    if reused:  # the original build's manifest page, SBOMs and gate records describe this very digest
        result.manifest = ctx.wiki.page_for_digest(result.digest) if ctx.wiki is not None else None
        return result
    if result.model is not None and result.digest:
        # Gates bind check results to the exact digest that was pushed (the index, when there is one).
        result.model.digest = result.digest
        _record_model_gate(ctx, name, repo, result.digest, result.model, log)
    if record is not None:  # (None: what is inside could not be read, and a warning said why: no SBOM, no page)
        ctx.enter(name, "the SBOM and manifest record")
        result.sboms = attest.attach_sboms(ctx, name, repo, record, built, platform_digests, log)
        record.update(digest=result.digest, tags=list(result.tags), sboms={
            p: {"digest": d, "subject": platform_digests[p], "repository": str(repo)}
            for p, d in result.sboms.items()})
        _save_manifest(ctx, record, result)
    if image.prune:
        _prune(ctx, image, [o for o in built if not o.reused_from], log)
    return result


def _index(ctx: BuildContext, name: str, built: list[PlatformOutcome], tags: list[str], log: IO[str], *,
           source: str | None) -> str:
    """The image's index under ``tags``: the reused index itself when every platform came from its tag
    (same digest, so its gate records still apply), else a new index of the platforms published."""
    repo = ctx.repository(name)
    try:
        if source is not None and ctx.lookups is not None:
            index_digest = ctx.lookups.digest(repo.path, source)
            index = ctx.lookups.manifest(repo.path, index_digest) if index_digest else None
            listed = {str(i["digest"]) for i in multiarch.image_entries(json.loads(index.body))} \
                if index is not None and index.media_type in INDEX_TYPES else set()
            if index_digest and listed == {str(o.digest) for o in built}:
                return _put_tags(ctx, name, repo, tags, log, digest=index_digest)
        entries = [multiarch.Entry(o.platform, str(o.digest), "", 0) for o in built]
        signals.check()
        digest = multiarch.publish_index(ctx.registry, repo.path, tags[:1], entries)
        ctx.moved.setdefault(name, {})[tags[0]] = digest
        return _put_tags(ctx, name, repo, tags[1:], log, digest=digest) if tags[1:] else digest
    except RegistryError as exc:
        raise StepFailed(f"index not published: {exc}") from None


def _put_tags(ctx: BuildContext, name: str, repo: Repository, tags: list[str], log: IO[str], *,
              digest: str | None) -> str:
    """Put the image under ``tags``, in order, recording each tag as it moves (so a failure part way leaves a
    report that says exactly which moved). With ``digest`` None the first tag is pushed through the engine;
    every other tag is written registry-side. A per-commit tag is written once: if it holds another digest
    already, it is left as it is and the report says so."""
    moved = ctx.moved.setdefault(name, {})
    for tag in tags:
        if digest is not None and _written_once(ctx, tag):
            try:
                existing = ctx.registry.manifest_digest(repo.path, tag)
            except RegistryError as exc:
                raise StepFailed(f"cannot read {repo}:{tag} before writing it: {exc}") from None
            if existing == digest:
                moved[tag] = digest
                continue
            if existing is not None:
                note = (f"{tag} already holds {existing}: a per-commit tag is written once, so it still "
                        f"points there, not at {digest}")
                ctx.notes.setdefault(name, []).append(note)
                log.write(f"== {note}\n")
                LOGGER.warning("%s: %s", name, note)
                continue
        digest = _retag(ctx, repo, digest, [tag], log) if digest is not None else _push_verified(ctx, repo, tag, log)
        moved[tag] = digest
    if digest is None:
        raise StepFailed(f"no tag of {repo} was written")
    return digest


def _written_once(ctx: BuildContext, tag: str) -> bool:
    commit_tag = ctx.plan.commit_tag
    return commit_tag is not None and (tag == commit_tag or tag.startswith(commit_tag + "-"))


def _retag(ctx: BuildContext, repo: Repository, digest: str, tags: list[str], log: IO[str]) -> str:
    """Put the published manifest ``digest`` under ``tags`` registry-side (same bytes, same digest)."""
    try:
        manifest = ctx.lookups.manifest(repo.path, digest) if ctx.lookups is not None else \
            ctx.registry.get_manifest(repo.path, digest)
        if manifest is None:
            raise StepFailed(f"{repo}@{digest} disappeared from the registry before it could be reused")
        for tag in tags:
            signals.check()
            stored = ctx.registry.put_manifest(repo.path, tag, manifest.body, manifest.media_type)
            found = ctx.registry.manifest_digest(repo.path, tag)
            if stored != digest or found != digest:
                raise StepFailed(f"reusing {repo}@{digest}: the registry has {found or 'nothing'} under {tag}")
            log.write(f"== tagged {repo}:{tag} -> {digest} (registry-side, no push)\n")
    except RegistryError as exc:
        raise StepFailed(f"could not reuse {repo}@{digest}: {exc}") from None
    return digest


def _push_verified(ctx: BuildContext, repo: Repository, tag: str, log: IO[str]) -> str:
    signals.check()  # nothing is pushed once the run was asked to stop
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


def _collect(ctx: BuildContext, image: ImageSpec, result: ImageResult, log: IO[str]) -> dict[str, Any] | None:
    """What is inside the image, from one container of its first platform (before it is pushed). A failure is a
    warning, unless the image declares content tags: then it cannot be tagged as declared, and fails."""
    ctx.enter(image.name, "the manifest container")
    facts = manifests.BuildFacts(image=image.name, tag=ctx.plan.commit_tag or ctx.plan.tag, ref=result.ref or "",
                                 digest=None, commit=ctx.revision.commit, branch=ctx.revision.branch,
                                 commit_url=ctx.revision.commit_url(), parent=result.parent,
                                 platforms=tuple(result.platforms_built), tags=tuple(result.tags),
                                 tests={"passed": result.tests.passed, "failed": result.tests.failed,
                                        "skipped": result.tests.skipped} if result.tests.junit else None,
                                 model=result.model.as_dict() if result.model else None,
                                 dockerfile=_repository_path(ctx, image, result.recipe),
                                 recipe=result.recipe, recipes_failed=result.recipes_failed)
    commands = {key: ctx.spec.all_info_cmds[key] for key in image.info_cmds}
    try:
        return manifests.collect(ctx.engine, result.image_id or "", facts, commands,
                                 timeout_s=ctx.timeout(image.name, "info_cmds"), content_tags=image.content_tags)
    except StepFailed as exc:
        if image.content_tags:
            raise StepFailed(f"content tags could not be read, nothing was pushed: {exc}") from None
        log.write(f"WARNING: {exc}\n")
        LOGGER.warning("%s: %s", image.name, exc)
        return None


def _save_manifest(ctx: BuildContext, record: dict[str, Any], result: ImageResult) -> None:
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


def _repository_path(ctx: BuildContext, image: ImageSpec, recipe: str | None = None) -> str | None:
    """The Dockerfile's path from the top of the git repository (for a link to it at the commit)."""
    try:
        top = open_repo(ctx.spec.stack_dir).working_tree_dir
    except GitError:  # no repository: no link
        return None
    try:
        used = image.context / recipe if recipe else image.dockerfile
        return used.resolve().relative_to(Path(str(top)).resolve()).as_posix()
    except ValueError:
        return None
