"""An image's budget, checked after its tests and its manifest container and before anything of it is pushed.

Each platform image built in this run is measured (``engine.layersizes``); a layer that the registry already
holds, in the parent this image builds on or in its quarter-stable, counts at the registry's own size, since the
push sends that very blob. The quarter-stable (``<prefix>-stable``) gives the growth, the layers that grew and
(from its SBOM) the packages added since. An image over budget fails here, so nothing of it is pushed and its
descendants are skipped; ``--allow-over-budget`` lets it through with a warning, and the report says so.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Mapping, NamedTuple, Sequence

from stack_builder.checks import budget as verdicts
from stack_builder.checks import inventory
from stack_builder.checks.budget import PlatformImage, Stable
from stack_builder.engine import layersizes
from stack_builder.engine.layersizes import Layer, Measured, SizeCache
from stack_builder.errors import RegistryError, StackError, StepFailed
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.records.files import read_json, write_json
from stack_builder.records.sbom import MANAGER_PROPERTY
from stack_builder.registry import multiarch, referrers
from stack_builder.registry.mediatypes import INDEX_TYPES, SBOM_ARTIFACT
from stack_builder.spec.budgets import describe
from stack_builder.spec.stack_spec import ImageSpec

LOGGER = logging.getLogger(__name__)

CACHE_FILE = Path("cache") / "layer-sizes.json"  # under the artifacts folder: a re-run compresses nothing again


class BudgetExceeded(StepFailed):
    """The image is over its budget; nothing of it was pushed."""


class Checked(NamedTuple):
    record: dict[str, Any] | None  # the manifest record, with its "budget" usage added
    allowed_over: bool = False  # over budget, let through by --allow-over-budget


def enforce(ctx: BuildContext, image: ImageSpec, built: Sequence[PlatformOutcome], record: dict[str, Any] | None,
            log: IO[str]) -> Checked:
    """Check ``image``'s budget on its platform images; raise ``BudgetExceeded`` when it is over (unless
    ``ctx.allow_over_budget``). A platform built in this run is measured in the engine; a reused one by the
    registry's own numbers (its manifest's blob sizes, its SBOM's packages): a budget added or tightened since,
    or an image once let through with --allow-over-budget, is judged again on every run that publishes it."""
    budget = image.budget
    fresh = [o for o in built if not o.reused_from and o.image_id]
    reused = [o for o in built if o.reused_from and o.digest]
    if budget is None or not (fresh or reused):
        return Checked(record)
    if not fresh:
        return _enforce_reused(ctx, image, reused, record, log)
    ctx.enter(image.name, "the budget")
    if budget.deny and record is None:
        raise StepFailed("budget.deny cannot be checked: the image's package lists could not be read (see the "
                         "warning above); nothing was pushed")
    cache = _cache(ctx)
    stables = {o.platform: _stable(ctx, image.name, o.platform) for o in fresh}
    images = []
    for outcome in fresh:
        known = _registry_sizes(ctx, outcome.parent, stables[outcome.platform])
        layers = layersizes.measure(ctx.engine, str(outcome.image_id), cache)
        images.append(PlatformImage(outcome.platform, tuple(replace(layer, size=known.get(layer.diff_id, layer.size))
                                                            for layer in layers)))
    _save_cache(ctx, cache)
    packages = _packages(ctx, image, fresh, record) if record is not None else {}
    verdict = verdicts.evaluate(budget, images, stables, packages, (record or {}).get("package_sizes"))
    usage = {**verdict.usage, "limits": list(describe(budget)), "over": [v.text for v in verdict.violations],
             "allowed_over": verdict.over and ctx.allow_over_budget}
    log.write(f"== budget ({'; '.join(describe(budget))}): " + json.dumps(verdict.usage, sort_keys=True) + "\n")
    record = {**record, "budget": usage} if record is not None else None
    return _outcome(ctx, image, verdict, record, log, "")


def _outcome(ctx: BuildContext, image: ImageSpec, verdict: verdicts.Verdict, record: dict[str, Any] | None,
             log: IO[str], which: str) -> Checked:
    """Within budget, or let through by --allow-over-budget (a warning), or ``BudgetExceeded``. ``which`` says
    how the image was judged, for the messages ("" for an image built in this run)."""
    if not verdict.over:
        return Checked(record)
    log.write("== " + verdict.message().replace("; ", "\n   ") + "\n")
    if ctx.allow_over_budget:
        LOGGER.warning("%s%s: %s; pushed anyway (--allow-over-budget)", image.name, which, verdict.message())
        return Checked(record, allowed_over=True)
    raise BudgetExceeded(f"{verdict.message()}{which}; nothing was pushed (build --allow-over-budget pushes it "
                         "anyway, for an emergency)")


def _enforce_reused(ctx: BuildContext, image: ImageSpec, reused: Sequence[PlatformOutcome],
                    record: dict[str, Any] | None, log: IO[str]) -> Checked:
    """The budget of an image every platform of which this run reuses, judged by the registry's numbers."""
    budget = image.budget
    assert budget is not None  # (enforce checked it)
    ctx.enter(image.name, "the budget (of the reused image, by the registry's numbers)")
    path = ctx.repository(image.name).path
    stables = {o.platform: _stable(ctx, image.name, o.platform) for o in reused}
    images, packages = [], {}
    try:
        for outcome in reused:
            images.append(PlatformImage(outcome.platform, registry_layers(ctx, path, str(outcome.digest))))
            found = referrers.find(ctx.registry, path, str(outcome.digest), SBOM_ARTIFACT)
            document = referrers.payload(ctx.registry, path, found[-1].digest, str(outcome.digest)) if found else None
            listed = sbom_packages(document) if document is not None else None
            if listed is None and budget.deny:
                raise StepFailed(f"budget.deny cannot be checked on the reused {path}@{str(outcome.digest)[:19]}: it "
                                 "has no SBOM to read its packages from; nothing was pushed")
            packages[outcome.platform] = listed or {}
    except RegistryError as exc:
        raise StepFailed(f"cannot read the reused image to check its budget: {exc}") from None
    verdict = verdicts.evaluate(budget, images, stables, packages, None)
    log.write(f"== budget of the reused image ({'; '.join(describe(budget))}): "
              + json.dumps(verdict.usage, sort_keys=True) + "\n")
    return _outcome(ctx, image, verdict, record, log, " (the reused image, by the registry's numbers)")


def _packages(ctx: BuildContext, image: ImageSpec, fresh: Sequence[PlatformOutcome],
              record: Mapping[str, Any]) -> dict[str, verdicts.Packages]:
    """Each platform's package lists: the record's for its platform; another's asked, only to check a deny list."""
    first = str(record.get("image_id") or "")
    found: dict[str, verdicts.Packages] = {}
    for outcome in fresh:
        if outcome.image_id == first or len(fresh) == 1:
            found[outcome.platform] = record.get("packages") or {}
        elif image.budget is not None and image.budget.deny:
            found[outcome.platform] = inventory.package_inventory(ctx.engine, str(outcome.image_id),
                                                                  timeout_s=ctx.timeout(image.name, "info_cmds"))
    return found


def _stable(ctx: BuildContext, name: str, platform: str) -> Stable | None:
    """The image's quarter-stable for ``platform`` in the registry, with its layers and (from its SBOM) its
    packages; None when there is none, or no registry to ask."""
    if ctx.lookups is None:
        return None
    repo = ctx.repository(name)
    tag = f"{ctx.spec.tag_prefix}-stable"
    try:
        digest = multiarch.platform_digest(ctx.registry, repo.path, tag, platform)
        if digest is None:
            return None
        layers = registry_layers(ctx, repo.path, digest)
        found = referrers.find(ctx.registry, repo.path, digest, SBOM_ARTIFACT)
        document = referrers.payload(ctx.registry, repo.path, found[-1].digest, digest) if found else None
    except RegistryError as exc:
        raise StepFailed(f"cannot read {repo}:{tag} to check the budget against it: {exc}") from None
    return Stable(tag, digest, layers, sbom_packages(document) if document is not None else None)


def registry_layers(ctx: BuildContext, path: str, digest: str) -> tuple[Layer, ...]:
    """The layers of the platform image ``path@digest``: diff IDs and steps from its config, the registry's
    blob sizes from its manifest."""
    manifest = ctx.registry.get_manifest(path, digest)
    if manifest is None or manifest.media_type in INDEX_TYPES:
        return ()
    try:
        body = json.loads(manifest.body)
        config = json.loads(ctx.registry.get_blob(path, str(body["config"]["digest"])))
        blobs = [int(layer["size"]) for layer in body.get("layers") or []]
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{path}@{digest} is not an image manifest with a config: {exc}") from None
    steps = [str(h.get("created_by") or "") for h in config.get("history") or [] if not h.get("empty_layer")]
    return tuple(Layer(d, size, steps[i] if i < len(steps) else "") for i, (d, size) in enumerate(zip(diff_ids, blobs)))


def sbom_packages(document: bytes) -> verdicts.Packages | None:
    """{manager: {name: version}} from a CycloneDX SBOM this builder wrote (``records.sbom``)."""
    try:
        components = json.loads(document).get("components") or []
    except (ValueError, AttributeError):
        return None
    found: dict[str, dict[str, str]] = {}
    for item in components:
        if not isinstance(item, dict):
            continue
        manager = next((str(p.get("value")) for p in item.get("properties") or []
                        if isinstance(p, dict) and p.get("name") == MANAGER_PROPERTY), None)
        if manager is not None:
            found.setdefault(manager, {})[str(item.get("name"))] = str(item.get("version", ""))
    return found


def _registry_sizes(ctx: BuildContext, parent: str | None, stable: Stable | None) -> dict[str, int]:
    """diff ID -> the registry's size of each layer already there: the parent's this image is built on (when it
    is in the target registry, by digest) and the quarter-stable's."""
    known = {layer.diff_id: layer.size for layer in stable.layers} if stable else {}
    host, _, rest = (parent or "").partition("/")
    path, _, digest = rest.partition("@")
    if host == ctx.registry_host and digest.startswith("sha256:") and ctx.lookups is not None:
        try:
            known.update({layer.diff_id: layer.size for layer in registry_layers(ctx, path, digest)})
        except RegistryError as exc:  # only a better estimate is lost
            LOGGER.warning("the layer sizes of %s were not read (%s); its layers are estimated", parent, exc)
    return known


def _cache(ctx: BuildContext) -> SizeCache:
    """The run's layer sizes, first filled from the previous runs' file."""
    cache = ctx.layer_sizes
    if not cache.items():
        try:
            saved = read_json(ctx.artifacts / CACHE_FILE, what="the layer size cache", default={})
        except StackError as exc:  # measured again, and written anew
            LOGGER.warning("%s", exc)
            saved = {}
        for name, value in (saved.items() if isinstance(saved, dict) else []):
            if isinstance(value, dict) and isinstance(value.get("size"), int):
                cache.put(str(name), Measured(str(value.get("diff_id")), int(value["size"])))
    return cache


def _save_cache(ctx: BuildContext, cache: SizeCache) -> None:
    try:
        write_json(ctx.artifacts / CACHE_FILE, {name: {"diff_id": m.diff_id, "size": m.size}
                                                for name, m in sorted(cache.items().items())})
    except OSError as exc:  # the next run measures again
        LOGGER.warning("the layer size cache was not saved: %s", exc)
