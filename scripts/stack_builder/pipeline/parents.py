"""Where a parent that this run does not rebuild comes from: the registry by digest, else the local engine.

Tags are tried in order: this branch's, then ``<prefix>-main``, ``<prefix>-stable`` and ``stable``.
For a multi-platform parent, a CI level's per-platform tag comes first (the index is merged later).
"""
from __future__ import annotations

import logging

from stack_builder.engine import images
from stack_builder.engine.client import Engine
from stack_builder.errors import RegistryError
from stack_builder.plan.plan import ParentRef
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


class ParentLookup:
    """A ``ParentFinder`` for ``make_plan``: (parent image, platform) -> where it is, or None."""

    def __init__(self, spec: Spec, *, tag: str, registry_host: str, registry: RegistryClient,
                 engine: Engine | None) -> None:
        self.spec = spec
        self.registry_host = registry_host
        self.registry = registry
        self.engine = engine  # None when no engine answers: then the registry alone decides
        self.native = multiarch.native_platform()
        prefix = spec.tag_prefix
        self.candidates = list(dict.fromkeys([tag, f"{prefix}-main", f"{prefix}-stable", "stable"]))

    def __call__(self, parent: str, platform: str) -> ParentRef | None:
        repo = self.spec.images[parent].repository.on(self.registry_host)
        multi = len(self.spec.images[parent].platforms) > 1
        try:
            for tag in self.candidates:
                if multi:
                    digest = self.registry.manifest_digest(repo.path, multiarch.platform_tag(tag, platform))
                    digest = digest or multiarch.platform_digest(self.registry, repo.path, tag, platform)
                else:
                    digest = self.registry.manifest_digest(repo.path, tag)
                if digest:
                    return ParentRef(f"{repo}@{digest}", tag, f"registry tag {tag}")
        except RegistryError as exc:
            LOGGER.warning("cannot look up %s in the registry (%s); trying the local engine", repo, exc)
        if self.engine is None or platform != self.native:
            return None
        for tag in self.candidates:
            found = images.find(self.engine, f"{repo}:{tag}")
            if found is not None:  # by name: BuildKit finds local images by name, not by ID
                return ParentRef(f"{repo}:{tag}", tag, f"local image {repo}:{tag}")
        return None
