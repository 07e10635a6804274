"""The plan: what one run builds, computed once from spec, tree, changes and registry lookups.

`plan` prints it and `build` executes it; a CI job (`build --image X --platform P`) executes its
slice of the same computation. A parent that is not rebuilt is looked up (registry, then the local
engine); a parent found nowhere joins the plan, whatever selected its child.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from stack_builder.kinds import Reason, ReasonKind
from stack_builder.errors import StackError
from stack_builder.plan.changes import Selection
from stack_builder.plan.tree import StackTree
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
RUNNERS = {"linux/amd64": "ubuntu-latest", "linux/arm64": "ubuntu-24.04-arm"}
DEFAULT_RUNNER = "ubuntu-latest"


@dataclass(frozen=True)
class ParentRef:
    """What a child builds FROM: an exact reference, and the tag for Dockerfiles that use BASE_TAG."""

    ref: str  # repository@sha256:... when in a registry, else a local image ID
    tag: str
    source: str  # where it was found, for the log


@dataclass(frozen=True)
class Job:
    """One CI job: one image on one platform, on a runner of that platform."""

    image: str
    platform: str
    runner: str


def primary_platform(platforms: tuple[str, ...]) -> str:
    """The platform a multi-platform image builds first in CI: linux/amd64 when it has it, else its first."""
    return "linux/amd64" if "linux/amd64" in platforms else platforms[0]


ParentFinder = Callable[[str, str], "ParentRef | None"]  # (parent image, platform) -> where it is, or None


@dataclass(frozen=True)
class Plan:
    tag: str  # <prefix>-<branch>
    commit_tag: str | None  # <prefix>-git-<sha12>, only from a clean checkout
    commit: str
    images: tuple[str, ...]  # what this run builds, parents first
    reasons: Mapping[str, Reason]
    platforms: Mapping[str, tuple[str, ...]]  # per image: the platforms this run builds
    parent_of: Mapping[str, str | None]  # per image: its parent image in the spec (None for a root)
    parents: Mapping[tuple[str, str], ParentRef]  # (image, platform) -> its parent, when not built in this run
    levels: tuple[tuple[Job, ...], ...]
    base: str | None = None
    base_source: str = ""
    platform: str | None = None  # the one platform of a CI job, else None

    def tags(self) -> list[str]:
        return [t for t in (self.tag, self.commit_tag) if t]

    def as_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag, "commit_tag": self.commit_tag, "commit": self.commit, "images": list(self.images),
            "levels": [[{"image": j.image, "platform": j.platform, "runner": j.runner} for j in level]
                       for level in self.levels],
            "reasons": {name: reason.text for name, reason in self.reasons.items()},
            "parents": {name: {"image": self.parent_of[name], "from": {
                platform: (vars(self.parents[(name, platform)]) if (name, platform) in self.parents else
                           "this run" if self.parent_of[name] else None) for platform in self.platforms[name]}}
                for name in self.images},
            "base": self.base, "base_source": self.base_source,
        }


def lookup_tags(prefix: str, tag: str) -> list[str]:
    """Where a published image is looked for, in order: this branch's tag, then main's, stable's, stable."""
    return list(dict.fromkeys([tag, f"{prefix}-main", f"{prefix}-stable", "stable"]))


def check_platform(platform: str) -> str:
    if not PLATFORM_RE.fullmatch(platform):
        raise StackError(f"--platform '{platform}' is not OS/ARCH[/VARIANT], e.g. linux/arm64")
    return platform


def make_plan(spec: Spec, tree: StackTree, selection: Selection, *, tag: str, commit_tag: str | None, commit: str,
              find_parent: ParentFinder, platform: str | None = None) -> Plan:
    """The plan for ``selection``: missing parents added, platforms sliced, parents resolved, in levels."""
    reasons = dict(selection.reasons)
    if platform:
        check_platform(platform)
        declared = {n: r for n, r in reasons.items() if platform in spec.images[n].platforms}
        if reasons and not declared:
            raise StackError(f"--platform {platform}: none of {', '.join(reasons)} declares it in platforms:")
        reasons = declared

    def platforms(name: str) -> tuple[str, ...]:
        return tuple(p for p in spec.images[name].platforms if platform is None or p == platform)

    parents: dict[tuple[str, str], ParentRef] = {}
    changed = True
    while changed:  # a parent added to the plan may itself need its parent
        changed = False
        for name in list(reasons):
            parent = spec.images[name].parent
            if parent is None or parent in reasons:
                continue
            for wanted in platforms(name):
                if (name, wanted) in parents:
                    continue
                found = find_parent(parent, wanted)
                if found is not None:
                    parents[(name, wanted)] = found
                    LOGGER.info("%s (%s): parent %s is not rebuilt; using %s (%s)", name, wanted, parent,
                                found.ref, found.source)
                elif wanted in spec.images[parent].platforms:
                    reasons[parent] = Reason(ReasonKind.NEEDED_PARENT, f"needed: parent of {name}, not found for {wanted}")
                    changed = True
                    break
                # else: the parent is never built for this platform; the child's job says so
    order = [n for n in tree.breadth_first() if n in reasons]
    # Parents found for an image that is now rebuilt anyway come from this run instead.
    parents = {key: ref for key, ref in parents.items() if spec.images[key[0]].parent not in reasons}
    # CI waves: an image's primary platform first; its other platforms one wave later (they wait for it),
    # and never before their parent's image of the same platform.
    waves: dict[tuple[str, str], int] = {}
    latest: dict[str, int] = {}  # per image: its last wave, which a child without its platform waits for
    for name in order:
        parent = spec.images[name].parent
        first = primary_platform(spec.images[name].platforms)
        for each in sorted(platforms(name), key=lambda p: p != first):
            after_parent = waves.get((parent, each), latest.get(parent, -1)) + 1 if parent else 0
            waves[(name, each)] = max(after_parent, waves[(name, first)] + 1) \
                if each != first and (name, first) in waves else after_parent
            latest[name] = max(latest.get(name, -1), waves[(name, each)])
    # One pass, in plan order: each wave lists its jobs parents first, as the order has them.
    by_wave: dict[int, list[Job]] = {}
    for name in order:
        for each in platforms(name):
            by_wave.setdefault(waves[(name, each)], []).append(Job(name, each, RUNNERS.get(each, DEFAULT_RUNNER)))
    levels = [tuple(by_wave[wave]) for wave in sorted(by_wave)]
    return Plan(tag=tag, commit_tag=commit_tag, commit=commit, images=tuple(order),
                reasons={n: reasons[n] for n in order}, platforms={n: platforms(n) for n in order},
                parent_of={n: spec.images[n].parent for n in order}, parents=parents, levels=tuple(levels), base=selection.base, base_source=selection.base_source,
                platform=platform)
