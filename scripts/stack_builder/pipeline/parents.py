"""Where published images are: which images the registry lacks, and where a parent not rebuilt comes from.

Tags are tried in order: this branch's, then ``<prefix>-main``, ``<prefix>-stable`` and ``stable``.
For a multi-platform parent, a CI level's per-platform tag comes first (the index is merged later).
Every answer comes from the run's ``Lookups``, so no reference is asked twice.
"""
from __future__ import annotations

import logging

from stack_builder.engine import images
from stack_builder import platforms
from stack_builder.engine import client as engine_client
from stack_builder.engine.client import Engine
from stack_builder.errors import RegistryError
from stack_builder.plan.plan import ParentRef, lookup_tags
from stack_builder.registry import multiarch
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.references import Repository
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


def missing_images(spec: Spec, names: list[str], *, tag: str, registry_host: str, lookups: Lookups) -> set[str]:
    """The images of ``names`` that the registry holds under none of the lookup tags (asked concurrently)."""
    candidates = lookup_tags(spec.tag_prefix, tag)
    repos = {name: spec.images[name].repository.on(registry_host).path for name in names}
    lookups.prefetch(repos.values())

    def present(name: str) -> bool:
        for candidate in candidates:
            listed = lookups.has_tag(repos[name], candidate)
            if listed is None:  # the registry would not list tags: ask for the reference itself
                listed = lookups.digest(repos[name], candidate) is not None
            if listed:
                return True
        return False

    return {name for name, found in zip(names, lookups.each(present, names)) if not found}


class ParentLookup:
    """A ``ParentFinder`` for ``make_plan``: (parent image, platform) -> where it is, or None."""

    def __init__(self, spec: Spec, *, tag: str, registry_host: str, lookups: Lookups | None,
                 engine: Engine | None) -> None:
        self.spec = spec
        self.registry_host = registry_host
        self.lookups = lookups  # None when no registry answers: then the local engine alone decides
        self.engine = engine  # None when no engine answers: then the registry alone decides
        self.native = engine_client.native_platform(engine) if engine is not None else platforms.host_platform()
        self.candidates = lookup_tags(spec.tag_prefix, tag)

    def __call__(self, parent: str, platform: str) -> ParentRef | None:
        repo = self.spec.images[parent].repository.on(self.registry_host)
        multi = len(self.spec.images[parent].platforms) > 1
        try:
            published = self._in_registry(self.lookups, repo, platform, multi) if self.lookups else None
            if published is not None:
                return published
        except RegistryError as exc:
            LOGGER.warning("cannot look up %s in the registry (%s); trying the local engine", repo, exc)
        if self.engine is None or platform != self.native:
            return None
        for tag in self.candidates:
            found = images.find(self.engine, f"{repo}:{tag}")
            if found is not None:  # by name: BuildKit finds local images by name, not by ID
                return ParentRef(f"{repo}:{tag}", tag, f"local image {repo}:{tag}")
        return None

    def _in_registry(self, lookups: Lookups, repo: Repository, platform: str, multi: bool) -> ParentRef | None:
        for tag in self.candidates:
            if multi:
                digest = lookups.digest(repo.path, multiarch.platform_tag(tag, platform))
                digest = digest or lookups.platform_digest(repo.path, tag, platform)
            else:
                digest = lookups.digest(repo.path, tag)
            if digest:
                return ParentRef(f"{repo}@{digest}", tag, f"registry tag {tag}")
        return None
