"""One platform of one image: reuse it if its input key is published, else build it FROM its parent,
tag it locally, test it, check the model.

Nothing here pushes: an image is published only after every platform's job has passed.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping

from stack_builder import signals
from stack_builder.checks import imagetests, modelcheck
from stack_builder.engine import containers, images, inputkey, local_bases
from stack_builder.engine.build import BuildRequest, build_image
from stack_builder.errors import Interrupted, RegistryError, StepFailed
from stack_builder.pipeline import bases, pins, trust
from stack_builder.kinds import Reason, ReasonKind
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.plan.changes import BASE_UPDATED
from stack_builder.plan.plan import ParentRef, lookup_tags
from stack_builder.records.files import utc_now
from stack_builder.records.logfile import open_log
from stack_builder.records.results import DriftResult, ModelResult, TestCounts
from stack_builder.registry import multiarch
from stack_builder.registry.statements import BuildStatement
from stack_builder.registry.credentials import redact_all
from stack_builder.spec.dockerfile import base_arg_default
from stack_builder.spec.references import split_reference
from stack_builder.spec.stack_spec import ImageSpec, ModelSpec
from stack_builder.version import BUILDER_LABEL, version as tool_version

LOGGER = logging.getLogger(__name__)

RECIPE_LABEL = "io.stack-builder.recipe"  # which of an image's recipes built it


@dataclass
class _Draft:
    """What one platform's job has found so far. Local to that job (one thread); it leaves the job only as
    the frozen ``PlatformOutcome`` that ``freeze`` makes."""

    platform: str
    image_id: str | None = None
    digest: str | None = None
    parent: str | None = None
    input_key: str | None = None
    reused_from: str | None = None
    recipe: str | None = None
    recipes_failed: dict[str, str] = field(default_factory=dict)
    tests: TestCounts = field(default_factory=TestCounts)
    model: ModelResult | None = None
    statement: BuildStatement | None = None

    def freeze(self, *, reason: Reason | None = None, interrupted: bool = False) -> PlatformOutcome:
        return PlatformOutcome(self.platform, ok=reason is None, reason=reason, image_id=self.image_id,
                               digest=self.digest, parent=self.parent, input_key=self.input_key,
                               reused_from=self.reused_from, interrupted=interrupted, recipe=self.recipe,
                               recipes_failed=dict(self.recipes_failed), tests=self.tests, model=self.model,
                               statement=self.statement)


def run(ctx: BuildContext, name: str, platform: str, parent: ParentRef | None, *,
        parent_from_run: bool = False) -> PlatformOutcome:
    """Build, test and check one platform of an image on ``parent`` (what its parent's step published for this
    platform, or what the plan found). Never raises: the outcome says what happened."""
    ctx.progress.begin(name)
    log_path = ctx.log_path(name, platform)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    where = f" ({platform})" if ctx.multi(name) else ""
    LOGGER.info("%s%s: started; its log: %s", name, where, log_path)
    draft = _Draft(platform)
    try:
        with open_log(log_path) as log:
            signals.check()
            _build_and_test(ctx, name, platform, parent, draft, log, parent_from_run)
        return draft.freeze()
    except StepFailed as exc:
        if isinstance(exc, imagetests.TestsFailed):
            draft.tests = exc.outcome.counts()
        if isinstance(exc, modelcheck.ModelCheckFailed):
            draft.model = exc.model
        if isinstance(exc, Interrupted) or signals.stopping():
            why = f"interrupted by {signals.signal_name()} {ctx.progress.step_of(name)}"
            LOGGER.warning("%s%s: %s (log: %s)", name, where, why, log_path)
            return draft.freeze(reason=Reason(ReasonKind.INTERRUPTED, why), interrupted=True)
        LOGGER.error("%s%s: FAILED: %s (log: %s)", name, where, exc, log_path)
        return draft.freeze(reason=Reason(ReasonKind.FAILED, str(exc)))
    except Exception as exc:  # our bug: record it, keep the other branches going, keep the traceback
        with open_log(log_path) as log:
            log.write(redact_all(traceback.format_exc()))
        LOGGER.exception("%s (%s): internal error", name, platform)
        return draft.freeze(reason=Reason(ReasonKind.INTERNAL, f"internal error {type(exc).__name__}: {exc} "
                                                                 f"(traceback in {log_path})"))


def _build_and_test(ctx: BuildContext, name: str, platform: str, given: ParentRef | None, outcome: _Draft,
                    log: IO[str], parent_from_run: bool) -> None:
    image = ctx.spec.images[name]
    where = f" ({platform})" if ctx.multi(name) else ""
    root_base = _upstream_base(ctx, image, platform, log) if image.parent is None else None
    parent = _parent_of(ctx, image, platform, given)
    if parent is not None and image.parent is not None and not parent_from_run:
        trust.check_parent(ctx, name, image.parent, parent, log)
    build_args = dict(image.build_args)
    labels = _labels(ctx)
    if root_base is not None:
        labels.update(root_base.labels())
    if parent is not None:
        build_args["BASE_IMAGE"] = parent.ref
        if image.parent is not None:
            build_args["BASE_TAG"] = parent.tag
            labels[bases.BASE_NAME] = parent.ref
            digest = _parent_id(ctx, parent)
            if digest.startswith("sha256:"):
                labels[bases.BASE_DIGEST] = digest
        outcome.parent = parent.ref
    pinned = {recipe: pins.pin(ctx, recipe, platform, (root_base.name, root_base.digest) if root_base else None,
                               build_args) for recipe in image.recipes or (image.dockerfile,)}
    outcome.input_key = labels[inputkey.LABEL] = _input_key(ctx, image, platform, build_args, parent, pinned)
    found = trust.reusable(ctx, name, platform, outcome.input_key, log) if ctx.reuse else None
    if found is not None:
        outcome.digest, outcome.reused_from, outcome.statement = found.digest, found.tag, found.statement
        LOGGER.info("%s%s: reused %s from %s (same input key)", name, where, outcome.digest, outcome.reused_from)
        return
    LOGGER.info("%s%s: building (%s)", name, where, ctx.plan.reasons[name])
    if parent is not None and image.prepull and image.parent is not None and "@sha256:" in parent.ref:
        _prepull(ctx, parent.ref, platform, log)
    recipes = image.recipes or (image.dockerfile,)
    for number, recipe in enumerate(recipes, start=1):
        try:
            with pins.dockerfile_to_build(recipe, pinned[recipe]) as dockerfile:
                _build_recipe(ctx, image, platform, outcome, log, (recipe, dockerfile), build_args, labels, parent)
        except StepFailed as exc:
            if len(recipes) == 1 or isinstance(exc, Interrupted) or signals.stopping():
                raise
            outcome.recipes_failed[_recipe_name(image, recipe)] = str(exc)
            log.write(f"== recipe {number}/{len(recipes)} ({_recipe_name(image, recipe)}) failed: {exc}\n")
            LOGGER.warning("%s%s: recipe %s failed (%s)%s", name, where, _recipe_name(image, recipe), exc,
                           "; trying the next" if number < len(recipes) else "")
            if number == len(recipes):
                if isinstance(exc, imagetests.TestsFailed):  # the last recipe's results stay in the report
                    outcome.tests = exc.outcome.counts()
                if isinstance(exc, modelcheck.ModelCheckFailed):
                    outcome.model = exc.model
                raise StepFailed("every recipe failed: " + "; ".join(
                    f"{r}: {why}" for r, why in outcome.recipes_failed.items())) from None
            continue
        if image.recipes:
            outcome.recipe = _recipe_name(image, recipe)
            log.write(f"== built with recipe {number}/{len(recipes)} ({outcome.recipe})\n")
        return


def _recipe_name(image: ImageSpec, recipe: Path) -> str:
    """The recipe as the spec names it: its path relative to the image's folder."""
    try:
        return recipe.relative_to(image.context).as_posix()
    except ValueError:
        return recipe.as_posix()


def _build_recipe(ctx: BuildContext, image: ImageSpec, platform: str, outcome: _Draft, log: IO[str],
                  files: tuple[Path, Path], build_args: dict[str, str], labels: dict[str, str],
                  parent: ParentRef | None) -> None:
    """Build the image from one recipe (its Dockerfile, and the pinned copy the build reads), then run its tests
    and model checks; raise on a failure."""
    recipe, dockerfile = files
    name = image.name
    where = f" ({platform})" if ctx.multi(name) else ""
    ctx.enter(name, f"the build{where}")
    log.write(f"== build {ctx.repository(name)}:{ctx.plan.tag} for {platform}" +
              (f" FROM {parent.ref}" if parent else "") + f" (input key {outcome.input_key})" +
              (f" with recipe {_recipe_name(image, recipe)}" if image.recipes else "") + "\n")
    requested = platform if (ctx.multi(name) or platform != ctx.native) else None
    if image.recipes:
        labels = {**labels, RECIPE_LABEL: _recipe_name(image, recipe)}
    outcome.image_id = build_image(ctx.engine, BuildRequest(
        context=image.context, dockerfile=dockerfile, build_args=build_args, labels=labels,
        platform=requested, secrets=image.secrets, cache_from=_cache_sources(ctx, name, platform)), log,
        on_step=lambda step: ctx.enter(name, f"the build{where}, {step}"), environment=ctx.settings.environment)
    _tag_locally(ctx, image, outcome.image_id, _local_tags(ctx, name, platform))

    signals.check()
    ctx.enter(name, f"the tests{where}")
    log.write(f"== test {outcome.image_id}\n")
    log.flush()
    suffix = f"-{platform.replace('/', '-')}" if ctx.multi(name) else ""
    junit = ctx.artifacts / "junit" / f"{name}{suffix}.xml"
    try:
        outcome.tests = imagetests.run_tests(
            ctx.spec, name, outcome.image_id, junit=junit, log=ctx.log_path(name, platform),
            extra_env={"STACK_PLATFORM": platform}, timeout_s=ctx.timeout(name, "tests")).counts()
    finally:  # whatever ended the tests, none of their containers outlive them
        containers.remove_labelled(ctx.engine, ctx.run_id, name, platform)  # (another platform's tests go on)
    if image.model is not None:
        signals.check()
        ctx.enter(name, f"the model checks{where}")
        log.write("== model checks\n")
        outcome.model = check_model(ctx, name, image.model, outcome.image_id)


def _upstream_base(ctx: BuildContext, image: ImageSpec, platform: str, log: IO[str]) -> bases.Base | None:
    """A root's base as this build uses it, for its labels and input key. A root that --refresh-base selected
    first pulls again a base the engine holds from a registry, so that it builds on the base as it is now."""
    finder = bases.BaseFinder(registry_host=ctx.registry_host, lookups=ctx.lookups, engine=ctx.engine,
                              native=ctx.native, auth=ctx.auth())
    reason = ctx.plan.reasons.get(image.name)
    if reason is not None and reason.kind is ReasonKind.BASE_UPDATED:
        pulled = finder.pull_again(image, platform)
        if pulled is not None:
            log.write(f"== pulled the base {pulled} again ({BASE_UPDATED})\n")
    found = finder.as_built(image, platform)
    if found is not None:
        log.write(f"== base {found.name} {found.digest} ({found.where})\n")
    return found


def _parent_id(ctx: BuildContext, parent: ParentRef) -> str:
    """The parent's digest when it is referred to by one, else its local image ID (else its reference)."""
    if "@sha256:" in parent.ref:
        return parent.ref.partition("@")[2]
    found = images.find(ctx.engine, parent.ref)
    return found.id if found else parent.ref


def _input_key(ctx: BuildContext, image: ImageSpec, platform: str, build_args: dict[str, str],
               parent: ParentRef | None, pinned: Mapping[Path, pins.Pinned]) -> str:
    """The image's input key for ``platform``: what it is built from, the parent by digest or image ID, and a
    root's base not in the engine by the digest its registry names (so a moved base is built on, not reused)."""
    sources: dict[str, str] = {}
    for found in pinned.values():  # the images the Dockerfiles name themselves (stages, frontends, a root's base)
        sources.update(found.sources)
    parent_id = _parent_id(ctx, parent) if parent is not None else ""
    args = {k: v for k, v in build_args.items() if k not in ("BASE_IMAGE", "BASE_TAG")}  # the parent stands for them
    tests = imagetests.test_dirs(ctx.spec, image.name)
    model_files = [image.model.examples] if image.model is not None else []
    return inputkey.input_key(context=image.context, dockerfile=image.dockerfile, build_args=args,
                              secret_ids=image.secrets, platform=platform,
                              parent=" ".join([parent_id, *(f"{k}={v}" for k, v in sorted(sources.items()))]),
                              tests=tests, checks=image.raw.get("model"), recipes=image.recipes,
                              root=ctx.spec.stack_dir, test_files=imagetests.conftest_files(ctx.spec, tests),
                              model_files=model_files)


def _prepull(ctx: BuildContext, ref: str, platform: str, log: IO[str]) -> None:
    """prepull: fetch the parent, with the registry's credentials, before the build needs it."""
    if images.find(ctx.engine, ref) is not None:
        log.write(f"== prepull {ref}: already in the engine\n")
        return
    repository, _, digest = ref.partition("@")
    log.write(f"== prepull {ref}\n")
    images.pull(ctx.engine, repository, digest, auth=ctx.auth(), platform=platform)


def _parent_of(ctx: BuildContext, image: ImageSpec, platform: str, given: ParentRef | None) -> ParentRef | None:
    if image.parent is None:
        return _root_base(ctx, image, platform)
    if given is not None:
        return given
    if image.parent in ctx.plan.images:
        raise StepFailed(f"parent {image.parent} has no {platform} image in this run")
    raise StepFailed(f"parent {image.parent} ({platform}) is not built in this run and was not found in "
                     f"registry {ctx.registry_host} or the local engine: build it too (--image {image.parent})")


def _root_base(ctx: BuildContext, image: ImageSpec, platform: str) -> ParentRef | None:
    """For a root whose Dockerfile says ARG BASE_IMAGE=<default>: the default's image for this platform.

    A default in the target registry is resolved there, to the digest of this platform's image,
    whatever the engine holds under the same name. Otherwise a local image of this platform under
    <default> (or <default>-<os>-<arch>) is used by name, which BuildKit finds for the engine's own
    platform only. A local stand-in for an official default (``engine.local_bases``) comes first, for the
    engine's own platform too, since the Dockerfile's default names the official image.
    """
    default = base_arg_default(image.dockerfile)
    if default is None:
        return None
    stand_in = local_bases.find(ctx.engine, default, platform)
    if stand_in is not None:
        return ParentRef(stand_in.name, "", f"local base {stand_in.name} (for {default})")
    if platform == ctx.native and not ctx.multi(image.name):
        return None
    host, _, rest = default.partition("/")
    if host == ctx.registry_host and rest:
        path, reference = split_reference(rest)
        try:
            digest = multiarch.platform_digest(ctx.registry, path, reference, platform)
        except RegistryError as exc:
            raise StepFailed(f"cannot resolve the base {default} for {platform}: {exc}") from None
        if digest is None:
            raise StepFailed(f"the base {default} has no {platform} image in registry {ctx.registry_host}")
        return ParentRef(f"{host}/{path}@{digest}", "", f"registry base {default}")
    for name in (default, multiarch.platform_tag(default, platform)):
        found = images.find(ctx.engine, name)
        if found is not None and found.platform == platform:
            return ParentRef(name, "", f"local base {name}")
    return None  # left to BuildKit, which resolves the name for this platform from its registry


def _cache_sources(ctx: BuildContext, name: str, platform: str) -> tuple[str, ...]:
    """The image's previous build in the registry, whose inline cache this build may reuse: the first of
    this branch's tag, then <prefix>-main, <prefix>-stable and stable that exists (for a multi-platform
    image, that tag's image of this platform)."""
    if not ctx.push or ctx.lookups is None:
        return ()
    repo = ctx.repository(name)
    for tag in lookup_tags(ctx.spec.tag_prefix, ctx.plan.tag):
        wanted = multiarch.platform_tag(tag, platform) if ctx.multi(name) else tag
        try:
            if ctx.lookups.digest(repo.path, wanted):
                return (f"{repo}:{wanted}",)
        except RegistryError:
            return ()  # no cache is slower, never wrong
    return ()


def _local_tags(ctx: BuildContext, name: str, platform: str) -> list[str]:
    if ctx.multi(name):
        return [multiarch.platform_tag(ctx.plan.tag, platform)]
    return ctx.plan.tags()


def _labels(ctx: BuildContext) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.revision": ctx.revision.commit,
        "org.opencontainers.image.created": utc_now(),
        "org.opencontainers.image.version": ctx.plan.tag,
        BUILDER_LABEL: tool_version(),  # which builder made it (not an input: a new builder reuses what is published)
    }
    if ctx.revision.source_url:
        labels["org.opencontainers.image.source"] = ctx.revision.source_url
    return labels


def _tag_locally(ctx: BuildContext, image: ImageSpec, image_id: str, tags: list[str]) -> None:
    # Dockerfiles written for datahub say FROM <image_name>:${BASE_TAG}; give them a local match.
    for name in {str(ctx.repository(image.name)), str(image.repository)}:
        images.tag(ctx.engine, image_id, name, tags)


def check_model(ctx: BuildContext, name: str, model_spec: ModelSpec, image_id: str) -> ModelResult:
    """Functional check on the examples, then drift against the current stable; raise if either fails."""
    functional = modelcheck.functional_check(ctx.engine, image_id, model_spec, timeout_s=ctx.timeout(name, "model"))
    failed = [f"functional.{check}" for check, ok in functional.checks.items() if not ok]
    if failed:
        drift = DriftResult("not run: the functional check failed", False, n=0, epsilon=0.0, delta=0.0,
                                       reuses=0, tolerance=0.0, max_disagreement=0.0, candidate=image_id)
    else:
        drift = modelcheck.drift_check(ctx.engine, image_id, _stable_baseline(ctx, name), model_spec,
                                       timeout_s=ctx.timeout(name, "model"))
        if not drift.passed:
            failed.append(f"drift (disagreement {drift.observed_rate} > allowed {drift.max_disagreement} vs "
                          f"{drift.baseline_tag})")
    result = ModelResult(image_id, functional, drift)
    if failed:
        raise modelcheck.ModelCheckFailed("model checks failed: " + ", ".join(failed), result)
    return result


def _stable_baseline(ctx: BuildContext, name: str) -> tuple[str, str, str] | None:
    """The image's current stable as (reference by digest, digest, tag), pulled into the engine."""
    repo = ctx.repository(name)
    for tag in (f"{ctx.spec.tag_prefix}-stable", "stable"):
        try:
            digest = ctx.registry.manifest_digest(repo.path, tag)
        except RegistryError as exc:
            raise StepFailed(f"cannot look up the stable baseline for the drift check: {exc}") from None
        if digest:
            try:
                images.pull(ctx.engine, str(repo), digest, auth=ctx.auth())
            except StepFailed as exc:
                raise StepFailed(f"the stable baseline for the drift check: {exc}") from None
            return f"{repo}@{digest}", digest, tag
    return None
