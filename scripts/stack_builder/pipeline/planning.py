"""Compute the plan of a run: spec, tree, changes, revision and parent lookups, in that order.

`plan` and `build` both call ``select`` then ``resolve``, so what CI fans out and what a local run builds agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import logging

from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine.client import Engine
from stack_builder.errors import EngineError, RegistryError, StackError
from stack_builder.pipeline import refresh
from stack_builder.pipeline.bases import BaseFinder
from stack_builder.pipeline.parents import ParentLookup, missing_images
from stack_builder.plan import changes
from stack_builder.plan.plan import Plan, check_platform, make_plan
from stack_builder.plan.revision import Revision, read_revision
from stack_builder.plan.tree import StackTree
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SelectionOptions:
    base_ref: str = ""
    all_images: bool = False
    images: tuple[str, ...] = ()
    platform: str = ""
    refresh_base: bool = False  # also the roots whose upstream base moved since their image was built


@dataclass(frozen=True)
class Selected:
    """What was chosen before any registry is asked: the spec, its tree, the revision and the selection."""

    spec: Spec
    tree: StackTree
    revision: Revision
    selection: changes.Selection
    platform: str | None
    refresh_base: bool = False


@dataclass(frozen=True)
class Planned:
    spec: Spec
    tree: StackTree
    revision: Revision
    plan: Plan


def select(config: Config, options: SelectionOptions) -> Selected:
    """Check everything else a user wrote (refs, names, platform) before any network request."""
    spec = config.spec
    tree = StackTree(spec)
    if options.refresh_base and options.images:
        raise StackError("--refresh-base selects the roots whose base moved, --image exactly the images named: "
                         "use one or the other")
    selection = changes.select(spec, tree, base_ref=options.base_ref or None, build_all=options.all_images,
                               images=options.images)
    platform = check_platform(options.platform) if options.platform else None
    return Selected(spec, tree, read_revision(config.stack_dir), selection, platform, options.refresh_base)


def reach(registry: RegistryClient, *, consequence: str, patient: bool = True) -> Lookups | None:
    """The run's lookups when the registry answers; None, after saying what that means, when it does not.

    Impatient (a `tree`, a --no-push build) asks once more at most: the run does not need the registry.
    """
    try:
        registry.ping(patient=patient)
    except RegistryError as exc:
        LOGGER.warning("%s; %s", exc, consequence)
        return None
    return Lookups(registry)


def with_missing(config: Config, selected: Selected, lookups: Lookups | None) -> changes.Selection:
    """The selection plus the images the registry holds under none of the lookup tags (not for --image)."""
    selection = selected.selection
    if lookups is None or selection.by_hand:
        return selection
    tree, spec = selected.tree, selected.spec
    unselected = [n for n in tree.breadth_first() if n not in selection.reasons]
    tag, _ = selected.revision.tags(spec.tag_prefix)
    missing = missing_images(spec, unselected, tag=tag, registry_host=config.registry, lookups=lookups)
    return changes.with_missing(spec, tree, selection, missing, config.registry)


def complete(config: Config, selected: Selected, lookups: Lookups | None, engine: Engine | None) -> changes.Selection:
    """The selection plus what the registry lacks, then (``--refresh-base``) the roots whose base moved."""
    selection = with_missing(config, selected, lookups)
    spec = selected.spec
    roots = [name for name in spec.roots if name not in selection.reasons]
    if not selected.refresh_base or not roots:
        return selection
    if lookups is None:
        raise RegistryError(f"--refresh-base compares each root's base with the labels of its image in registry "
                            f"{config.registry}, which does not answer (see above): start it (`bash setup.sh env` "
                            "starts the local one) or name another with --registry")
    tag, _ = selected.revision.tags(spec.tag_prefix)
    finder = BaseFinder(registry_host=config.registry, lookups=lookups, engine=engine)
    checks = refresh.check_roots(spec, roots, tag=tag, registry_host=config.registry, lookups=lookups,
                                 finder=finder, platform=selected.platform)
    stale = refresh.stale_roots(checks)
    LOGGER.info("--refresh-base: %s", f"the base of {', '.join(stale)} moved" if stale else
                f"no root's base moved ({len(checks)} checked)")
    return changes.with_refreshed(spec, selected.tree, selection, stale)


def resolve(config: Config, selected: Selected, *, lookups: Lookups | None, engine: Engine | None) -> Planned:
    """The plan: the selection plus what the registry lacks (and with --refresh-base the roots whose base
    moved), parents looked up, missing ones added, in levels."""
    spec, revision, tree = selected.spec, selected.revision, selected.tree
    tag, commit_tag = revision.tags(spec.tag_prefix)
    selection = complete(config, selected, lookups, engine)
    lookup = ParentLookup(spec, tag=tag, registry_host=config.registry, lookups=lookups, engine=engine)
    plan = make_plan(spec, tree, selection, tag=tag, commit_tag=commit_tag, commit=revision.commit,
                     find_parent=lookup, platform=selected.platform)
    return Planned(spec, tree, revision, plan)


def try_engine(pool_size: int = 10) -> Engine | None:
    """The engine, or None when none answers (then the registry alone says where parents are)."""
    try:
        return engine_client.connect(pool_size=pool_size)
    except EngineError:
        return None


def plan_only(config: Config, options: SelectionOptions) -> Plan:
    """The plan `build` would execute, computed the same way, without building: for `plan` and CI."""
    selected = select(config, options)
    registry = config.registry_client()
    everything = len(selected.selection.reasons) == len(selected.spec.images)  # nothing to look up
    lookups = None if everything else reach(
        registry, consequence="the plan cannot say which images it lacks or find parents in it")
    # When every image is built, no parent is looked up anywhere: the engine is not asked either.
    return resolve(config, selected, lookups=lookups, engine=None if everything else try_engine()).plan
