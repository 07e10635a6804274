"""Publish one image whose platforms passed: push or reuse, the index, content tags, signatures, the model's
gate record, SBOMs and the manifest record. The answer is one immutable ``Publication``.

A reused platform (its input key was already published) is not pushed: its manifest is put under this run's
tags registry-side, so the digest, and every gate record bound to it, stay the same.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from stack_builder.checks import inventory
from stack_builder.engine import images
from stack_builder.errors import GitError, RegistryError, StepFailed
from stack_builder.kinds import Reason, Status
from stack_builder.pipeline import attest, budgets
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.pipeline.image_job import RECIPE_LABEL
from stack_builder.pipeline.tagging import Tagger
from stack_builder.plan.changes import open_repo
from stack_builder.plan.plan import ParentRef
from stack_builder.records import gates, manifests, revocations
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.registry import github_packages, multiarch, statements
from stack_builder.registry.signing import SigningError
from stack_builder.spec.stack_spec import ImageSpec
from stack_builder.version import version as tool_version

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gathered:
    """What an image's platform jobs found, as the report keeps it."""

    image_id: str | None = None  # the first platform built here (a reused one has no local image)
    parent: str | None = None
    input_key: str | None = None
    input_keys: Mapping[str, str] = field(default_factory=dict)
    tests: TestCounts = field(default_factory=TestCounts)
    model: ModelResult | None = None
    log: str | None = None
    platforms_built: tuple[str, ...] = ()
    platforms_failed: Mapping[str, str] = field(default_factory=dict)
    platforms_disagreeing: tuple[str, ...] = ()
    example_outputs: Mapping[str, str] = field(default_factory=dict)
    recipe: str | None = None
    recipes_failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Publication:
    """What publishing an image did."""

    status: Status  # built or reused
    reason: Reason
    ref: str
    digest: str | None = None
    tags: tuple[str, ...] = ()
    reused_from: str | None = None
    content_tags: tuple[str, ...] = ()
    sboms: Mapping[str, str] = field(default_factory=dict)
    signed: tuple[str, ...] = ()
    manifest: str | None = None
    recipe: str | None = None
    model: ModelResult | None = None
    for_children: Mapping[str, ParentRef] = field(default_factory=dict)
    allowed_over_budget: bool = False  # over its budget, published with --allow-over-budget


@dataclass(frozen=True)
class _Pushed:
    ref: str
    digest: str | None
    platforms: tuple[PlatformOutcome, ...]  # with the digest each was published under
    for_children: Mapping[str, ParentRef]


def publish(ctx: BuildContext, name: str, built: Sequence[PlatformOutcome], gathered: Gathered, tagger: Tagger,
            log: IO[str]) -> Publication:
    image = ctx.spec.images[name]
    repo = tagger.repo
    tags = ctx.plan.tags()
    sources = {o.reused_from for o in built}
    reused = None not in sources
    reason = ctx.plan.reasons[name]
    reused_from = ", ".join(f"{repo}:{s}" for s in sorted(str(s) for s in sources)) if reused else None
    if reused_from is not None:
        reason = Reason(reason.kind, f"{reason.text}; same input key as {reused_from}")
    ref = f"{repo}:{ctx.plan.tag}"
    # What is inside the image is asked before anything is pushed: a bad content tag stops the image here.
    record = None if reused else _collect(ctx, image, gathered, ref, tags, log)
    record, over = budgets.enforce(ctx, image, built, record, log)  # over budget: it fails here, before any push
    content = attest.content_tags(ctx.plan.tag, record) if record is not None else []
    status = Status.REUSED if reused else Status.BUILT
    if not ctx.push:
        manifest = _save_manifest(ctx, {**record, "tags": [*tags, *content]}) if record is not None else None
        return Publication(status, reason, ref, tags=tuple(tags), reused_from=reused_from,
                           content_tags=tuple(content), manifest=manifest, recipe=gathered.recipe,
                           model=gathered.model, for_children=_local_parents(ctx, name, built), allowed_over_budget=over)
    pushed = _push(ctx, name, built, tags, tagger, source=sources.pop() if reused and len(sources) == 1 else None)
    digests = {o.platform: str(o.digest) for o in pushed.platforms if o.digest}
    recipe = _reused_recipe(ctx, image, repo.path, digests) if reused else gathered.recipe
    if reused and pushed.digest and ctx.lookups is not None:  # the tags its first build worked out, carried over
        content = _reused_content_tags(ctx, image, repo.path, built, pushed.digest)
    if content and pushed.digest and not (ctx.plan.platform and ctx.multi(name)):
        # (one platform of a multi-platform image: `merge` puts them on the index)
        tagger.put(content, digest=pushed.digest)
    if reused:
        _undo_if_yanked(ctx, repo.path, str(repo), [*digests.values(), str(pushed.digest)])
    signed: list[str] = []
    if ctx.signing is not None:
        ctx.enter(name, "signing")
        signed = attest.sign_built(ctx, name, repo, pushed.platforms, tagger.made_index, content, log)
        if reused and pushed.digest and pushed.digest not in signed and statements.verified(
                ctx.signing, f"{repo}@{pushed.digest}", ctx.credentials, commit=ctx.revision.commit):
            signed.append(pushed.digest)  # the index its platforms came with, vouched for by its own statement
    final_tags = tuple(t for t, d in tagger.moved.items() if d == pushed.digest)

    def published(manifest: str | None, model: ModelResult | None, sboms: Mapping[str, str]) -> Publication:
        return Publication(status, reason, pushed.ref, digest=pushed.digest, tags=final_tags, reused_from=reused_from,
                           content_tags=tuple(content), sboms=sboms, signed=tuple(signed), manifest=manifest,
                           recipe=recipe, model=model, for_children=pushed.for_children, allowed_over_budget=over)

    if reused:  # the original build's manifest page, SBOMs and gate records describe this very digest
        return published(ctx.wiki.page_for_digest(pushed.digest) if ctx.wiki is not None and pushed.digest else None,
                         gathered.model, {})
    model = _bound_model(ctx, name, repo.path, pushed.digest, gathered.model, log)
    sboms: dict[str, str] = {}
    manifest = None
    if record is not None:  # (None: what is inside could not be read, and a warning said why: no SBOM, no page)
        ctx.enter(name, "the SBOM and manifest record")
        sboms = attest.attach_sboms(ctx, name, repo, record, list(pushed.platforms), digests, log)
        manifest = _save_manifest(ctx, {**record, "digest": pushed.digest, "tags": list(final_tags), "sboms": {
            p: {"digest": d, "subject": digests[p], "repository": str(repo)} for p, d in sboms.items()}})
    if image.prune:
        _prune(ctx, image, [o for o in built if not o.reused_from], log)
    return published(manifest, model, sboms)


def _reused_content_tags(ctx: BuildContext, image: ImageSpec, path: str, built: Sequence[PlatformOutcome],
                         digest: str) -> list[str]:
    """A reused image's content tags under this run's tag: from its statements when every platform has one
    (signing configured); else, trusting the registry, from the tags an earlier build put on the digest."""
    stated = [o.statement for o in built if o.statement is not None]
    from_statement = attest.statement_content_tags(ctx.plan.tag, stated) if len(stated) == len(built) else None
    if from_statement is not None or ctx.lookups is None:
        return from_statement or []
    return attest.inherited_content_tags(ctx.lookups, image, path, ctx.plan.tag, digest)


def _undo_if_yanked(ctx: BuildContext, path: str, repo: str, digests: Sequence[str]) -> None:
    """A yank that raced this reuse: it may have removed the digest's tags just before this run put them back.
    A yank records the revocation before it removes anything, so looking again after the tags moved sees it;
    then the tags are removed again, as the yank meant, and the image fails."""
    for digest in dict.fromkeys(d for d in digests if d.startswith("sha256:")):
        try:
            revoked = revocations.read(ctx.registry, path, digest)
        except RegistryError as exc:
            raise StepFailed(f"cannot tell whether {repo}@{digest} was yanked meanwhile: {exc}") from None
        if revoked is None:
            continue
        try:
            github_packages.remove_manifest(ctx.registry, path, digest)
        except RegistryError as exc:
            raise StepFailed(f"{repo}@{digest} was yanked while this run reused it ({revoked.describe()}), and the "
                             f"tags this run put on it could not be removed again: {exc}; run the same yank "
                             "again") from None
        raise StepFailed(f"{repo}@{digest} was yanked while this run reused it ({revoked.describe()}): the tags "
                         "this run put on it were removed again; build it anew (--no-reuse)")


def _local_parents(ctx: BuildContext, name: str, built: Sequence[PlatformOutcome]) -> dict[str, ParentRef]:
    """Not pushed: children build on the image by its local name (BuildKit finds local images by name, for the
    engine's own platform)."""
    repo = ctx.repository(name)
    found = {}
    for outcome in built:
        local = multiarch.platform_tag(ctx.plan.tag, outcome.platform) if ctx.multi(name) else ctx.plan.tag
        found[outcome.platform] = ParentRef(f"{repo}:{local}", ctx.plan.tag, "built in this run (not pushed)")
    return found


def _push(ctx: BuildContext, name: str, built: Sequence[PlatformOutcome], tags: Sequence[str], tagger: Tagger, *,
          source: str | None) -> _Pushed:
    """Every platform under its tags (one tag per platform for a multi-platform image, then the index)."""
    repo = tagger.repo
    published: list[PlatformOutcome] = []
    for outcome in built:
        # The per-commit platform tag says which commit's job published it: `merge` reads those.
        platform_tags = [multiarch.platform_tag(t, outcome.platform) for t in tags] if ctx.multi(name) else tags
        digest = tagger.put(platform_tags, digest=outcome.digest if outcome.reused_from else None)
        published.append(replace(outcome, digest=digest))
    for_children = {o.platform: ParentRef(f"{repo}@{o.digest}", ctx.plan.tag, "published in this run")
                    for o in published}
    if not ctx.multi(name):
        return _Pushed(f"{repo}:{ctx.plan.tag}", published[0].digest, tuple(published), for_children)
    if ctx.plan.platform:  # one platform of a CI fan-out: `merge` assembles the index when every one is pushed
        only = published[0]
        return _Pushed(f"{repo}:{multiarch.platform_tag(ctx.plan.tag, only.platform)}", only.digest,
                       tuple(published), for_children)
    ctx.enter(name, "the index")
    return _Pushed(f"{repo}:{ctx.plan.tag}", tagger.index(published, tags, source=source), tuple(published),
                   for_children)


def _reused_recipe(ctx: BuildContext, image: ImageSpec, repository: str, digests: Mapping[str, str]) -> str | None:
    """The recipe a reused image's build used, from its label."""
    if not image.recipes or ctx.lookups is None or not digests:
        return None
    try:
        return ctx.lookups.labels(repository, next(iter(digests.values()))).get(RECIPE_LABEL) or None
    except RegistryError:
        return None


def model_gate_record(name: str, model: ModelResult) -> gates.GateRecord:
    details: dict[str, object] = {"drift_status": model.drift.status, "functional": model.functional.checks,
                                  "drift": model.as_dict()["drift"]}
    if model.platforms:
        details["platforms"] = {p: {"passed": r.passed, "summary": r.summary()} for p, r in model.platforms.items()}
    return gates.GateRecord(gates.MODEL, name, passed=model.passed, summary=model.summary(), details=details)


def _bound_model(ctx: BuildContext, name: str, repository: str, digest: str | None, model: ModelResult | None,
                 log: IO[str]) -> ModelResult | None:
    """The model's check results bound to the exact digest pushed (the index, when there is one), stored as a
    gate record there, with this job's signed statement of them when signing is configured."""
    if model is None or not digest:
        return model
    try:
        gates.write_record(ctx.registry, repository, digest, model_gate_record(name, model), signing=ctx.signing)
        recorded = True
    except (RegistryError, SigningError) as exc:
        # The image is published; without the record (or its statement) a promotion will refuse it, and say why.
        recorded = False
        log.write(f"WARNING: model check record not stored: {exc}\n")
        LOGGER.warning("%s: model check record not stored (promotion will refuse it): %s", name, exc)
    return replace(model, digest=digest, recorded=recorded)


def _collect(ctx: BuildContext, image: ImageSpec, gathered: Gathered, ref: str, tags: Sequence[str],
             log: IO[str]) -> dict[str, Any] | None:
    """What is inside the image, from one container of its first platform (before it is pushed). A failure is a
    warning, unless the image declares content tags: then it cannot be tagged as declared, and fails."""
    ctx.enter(image.name, "the manifest container")
    tests = gathered.tests
    facts = manifests.BuildFacts(image=image.name, tag=ctx.plan.commit_tag or ctx.plan.tag, ref=ref,
                                 digest=None, commit=ctx.revision.commit, branch=ctx.revision.branch,
                                 commit_url=ctx.revision.commit_url(), parent=gathered.parent,
                                 platforms=gathered.platforms_built, tags=tuple(tags),
                                 tests={"passed": tests.passed, "failed": tests.failed,
                                        "skipped": tests.skipped} if tests.junit else None,
                                 model=gathered.model.as_dict() if gathered.model else None,
                                 dockerfile=_repository_path(ctx, image, gathered.recipe),
                                 recipe=gathered.recipe, recipes_failed=gathered.recipes_failed,
                                 builder=tool_version())
    commands = {key: ctx.spec.all_info_cmds[key] for key in image.info_cmds}
    try:
        return inventory.collect(ctx.engine, gathered.image_id or "", facts, commands,
                                 timeout_s=ctx.timeout(image.name, "info_cmds"), content_tags=image.content_tags)
    except StepFailed as exc:
        if image.content_tags:
            raise StepFailed(f"content tags could not be read, nothing was pushed: {exc}") from None
        log.write(f"WARNING: {exc}\n")
        LOGGER.warning("%s: %s", image.name, exc)
        return None


def _save_manifest(ctx: BuildContext, record: dict[str, Any]) -> str:
    """Save the record (and its wiki page, when the run writes the wiki); the page's name."""
    manifests.save(record, [ctx.artifacts / "manifests"])
    if ctx.wiki is None:
        return manifests.record_name(record)
    with ctx.wiki_lock:
        return ctx.wiki.add_manifest(record)


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
