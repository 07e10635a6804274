"""``--refresh-base``: the roots whose upstream base moved since their published image was built.

For each root not selected otherwise, and each of its platforms, the image under the first lookup tag
that has one (this branch's, then ``<prefix>-main``, ``<prefix>-stable``, ``stable``) is read from the
registry, and its ``org.opencontainers.image.base.*`` labels are compared with the base as it stands
now (``bases.BaseFinder.current``). A root is stale when, on any platform, the base's digest (or name)
differs from its label, or its image has no such label. A root with no image under any lookup tag is
left to the selection of what the registry lacks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from stack_builder.pipeline.bases import BASE_DIGEST, BASE_NAME, Base, BaseFinder
from stack_builder.plan.plan import lookup_tags
from stack_builder.registry import multiarch
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseCheck:
    """One root on one platform: the base its published image records, and the base as it is now."""

    image: str
    platform: str
    tag: str  # the tag whose image was read
    recorded_name: str | None
    recorded_digest: str | None
    current: Base

    @property
    def moved(self) -> bool:
        """True when the image records no base, or another one than the base now."""
        return (self.recorded_name, self.recorded_digest) != (self.current.name, self.current.digest)

    def describe(self) -> str:
        recorded = f"{self.recorded_name} {self.recorded_digest}" if self.recorded_digest else "no base label"
        return (f"{self.image} ({self.platform}): its image under tag {self.tag} records {recorded}; "
                f"the base is now {self.current.name} {self.current.digest} ({self.current.where})")


def stale_roots(checks: Iterable[BaseCheck]) -> list[str]:
    """The roots of ``checks`` whose base moved on any platform, each once, in the order checked."""
    return list(dict.fromkeys(check.image for check in checks if check.moved))


def check_roots(spec: Spec, roots: Iterable[str], *, tag: str, registry_host: str, lookups: Lookups,
                finder: BaseFinder, platform: str | None = None) -> list[BaseCheck]:
    """Compare each root's published labels with its base now, on each of its platforms (or ``platform``).

    Registry and engine errors are raised: without them the comparison cannot be made.
    """
    wanted = [(name, p) for name in roots for p in spec.images[name].platforms if platform in (None, p)]

    def check(item: tuple[str, str]) -> BaseCheck | None:
        name, on = item
        image = spec.images[name]
        published = _published(lookups, image.repository.on(registry_host).path, lookup_tags(spec.tag_prefix, tag),
                                on, multi=len(image.platforms) > 1)
        if published is None:
            return None  # not in the registry: selected as missing, if at all
        current = finder.current(image, on)
        if current is None:
            LOGGER.info("%s (%s): builds FROM no image outside the stack; no base to refresh", name, on)
            return None
        found_tag, digest = published
        labels = lookups.labels(image.repository.on(registry_host).path, digest)
        result = BaseCheck(name, on, found_tag, labels.get(BASE_NAME), labels.get(BASE_DIGEST), current)
        LOGGER.info("%s: %s", "base moved" if result.moved else "base unchanged", result.describe())
        return result

    done = [check(item) for item in wanted]  # a stack has few roots: one after the other
    return [result for result in done if result is not None]


def _published(lookups: Lookups, repository: str, tags: list[str], platform: str, *,
               multi: bool) -> tuple[str, str] | None:
    """(tag, digest of this platform's image) under the first of ``tags`` that has one, else None."""
    for tag in tags:
        digest = lookups.digest(repository, multiarch.platform_tag(tag, platform)) if multi else None
        digest = digest or lookups.platform_digest(repository, tag, platform)
        if digest:
            return tag, digest
    return None
