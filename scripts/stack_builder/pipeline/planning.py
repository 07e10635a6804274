"""Compute the plan of a run: spec, tree, changes, revision and parent lookups, in that order.

`plan` and `build` both call ``select`` then ``resolve``, so what CI fans out and what a local run builds agree.
"""
from __future__ import annotations

from dataclasses import dataclass

from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine.client import Engine
from stack_builder.errors import EngineError
from stack_builder.pipeline.parents import ParentLookup
from stack_builder.plan import changes
from stack_builder.plan.plan import Plan, check_platform, make_plan
from stack_builder.plan.revision import Revision, read_revision
from stack_builder.plan.tree import StackTree
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import find_credentials
from stack_builder.spec.stack_spec import Spec


@dataclass(frozen=True, kw_only=True)
class SelectionOptions:
    base_ref: str = ""
    all_images: bool = False
    images: tuple[str, ...] = ()
    platform: str = ""


@dataclass(frozen=True)
class Selected:
    """What was chosen before any registry is asked: the spec, its tree, the revision and the selection."""

    spec: Spec
    tree: StackTree
    revision: Revision
    selection: changes.Selection
    platform: str | None


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
    selection = changes.select(spec, tree, base_ref=options.base_ref or None, build_all=options.all_images,
                               images=options.images)
    platform = check_platform(options.platform) if options.platform else None
    return Selected(spec, tree, read_revision(config.stack_dir), selection, platform)


def resolve(config: Config, selected: Selected, *, registry: RegistryClient, engine: Engine | None) -> Planned:
    """The plan: the selection with its parents looked up, missing ones added, in levels."""
    spec, revision = selected.spec, selected.revision
    tag, commit_tag = revision.tags(spec.tag_prefix)
    lookup = ParentLookup(spec, tag=tag, registry_host=config.registry, registry=registry, engine=engine)
    plan = make_plan(spec, selected.tree, selected.selection, tag=tag, commit_tag=commit_tag,
                     commit=revision.commit, find_parent=lookup, platform=selected.platform)
    return Planned(spec, selected.tree, revision, plan)


def plan_only(config: Config, options: SelectionOptions) -> Plan:
    """The plan `build` would execute, computed the same way, without building: for `plan` and CI."""
    selected = select(config, options)
    try:  # as `build` does, a parent in the local engine counts; without an engine, the registry alone decides
        engine = engine_client.connect() if selected.selection.reasons else None
    except EngineError:
        engine = None
    registry = RegistryClient(config.registry, find_credentials(config.registry))
    return resolve(config, selected, registry=registry, engine=engine).plan
