"""Whether an image keeps to its budget (``spec.budgets``): pure decisions on plain data, and the words of a
failure. ``pipeline.budgets`` measures the image and finds its quarter-stable; nothing here runs anything.

Sizes are compressed sizes (``engine.layersizes`` says what exactly is measured): an image's size is the sum
of its distinct layers' sizes, as a registry stores them; the config and manifest (a few kB) are not counted.
"""
from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Sequence

from stack_builder.engine.layersizes import Layer
from stack_builder.spec.budgets import Budget, size_text

LOGGER = logging.getLogger(__name__)

SHOWN_LAYERS = 5  # the layers that grew most, named in a failure
SHOWN_PACKAGES = 20  # the packages added since the stable, named in a failure

Packages = Mapping[str, Mapping[str, str]]  # manager -> name -> version


class BudgetKind(Enum):
    """Which limit of a budget."""

    SIZE = "size"
    GROWTH = "growth"
    DENY = "deny"


class _Layered:
    layers: tuple[Layer, ...]

    @property
    def size(self) -> int:
        """The compressed size: its distinct layers' sizes together."""
        return total_size(self.layers)


@dataclass(frozen=True)
class PlatformImage(_Layered):
    """One platform's image as it would be pushed."""

    platform: str
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Stable(_Layered):
    """The image's quarter-stable for one platform, as the registry holds it."""

    tag: str
    digest: str
    layers: tuple[Layer, ...]  # sizes are the registry's blob sizes
    packages: Packages | None = None  # from its SBOM; None when it has none


@dataclass(frozen=True)
class Violation:
    kind: BudgetKind
    platform: str | None
    text: str


@dataclass(frozen=True)
class Verdict:
    """What the budget says of an image: what is over, and how much of each limit it uses (for its page)."""

    violations: tuple[Violation, ...]
    usage: Mapping[str, Any]
    details: tuple[str, ...] = field(default_factory=tuple)  # grown layers and added packages, when over

    @property
    def over(self) -> bool:
        return bool(self.violations)

    def message(self) -> str:
        return "over budget: " + "; ".join([*(v.text for v in self.violations), *self.details])


def total_size(layers: Sequence[Layer]) -> int:
    """The sum of the distinct layers' sizes (a registry stores a repeated layer once)."""
    return sum({layer.diff_id: layer.size for layer in layers}.values())


def growth_percent(size: int, before: int) -> float:
    return (size - before) * 100.0 / before if before > 0 else 0.0


def _step(text: str) -> str:
    """A Dockerfile step as the history has it, on one line."""
    words = text.replace("/bin/sh -c #(nop) ", "").removesuffix(" # buildkit").split()
    return " ".join(words) or "(no step recorded: an imported layer)"


def grown_layers(layers: Sequence[Layer], stable: Sequence[Layer] | None,
                 limit: int = SHOWN_LAYERS) -> list[tuple[Layer, int, int | None]]:
    """The layers that grew most, as (layer, growth in bytes, its size in the stable or None), largest first.

    A layer the stable has (same diff ID) did not grow. Another is compared with the stable's layer made by the
    same step (the first not yet compared); a layer of a new step grew by its whole size. Without a stable, the
    largest layers."""
    if stable is None:
        ranked = sorted(layers, key=lambda layer: layer.size, reverse=True)
        return [(layer, layer.size, None) for layer in ranked[:limit]]
    same = {layer.diff_id for layer in stable}
    unmatched = [layer for layer in stable if layer.diff_id not in {c.diff_id for c in layers}]
    found: list[tuple[Layer, int, int | None]] = []
    for layer in layers:
        if layer.diff_id in same:
            continue
        match = next((old for old in unmatched if _step(old.created_by) == _step(layer.created_by)), None)
        if match is not None:
            unmatched.remove(match)
        found.append((layer, layer.size - (match.size if match else 0), match.size if match else None))
    found.sort(key=lambda item: item[1], reverse=True)
    return [item for item in found if item[1] > 0][:limit]


def _normal(manager: str, name: str) -> str:
    name = name.lower()
    return re.sub(r"[-_.]+", "-", name) if manager == "pip" else name


def denied(packages: Packages, deny: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str, str]]:
    """(manager, package, version, pattern) of each package a deny pattern matches (fnmatch, case-insensitive;
    pip names with -, _ and . alike)."""
    found = []
    for manager, patterns in deny.items():
        for name, version in sorted((packages.get(manager) or {}).items()):
            pattern = next((p for p in patterns if fnmatch.fnmatchcase(_normal(manager, name), _normal(manager, p))),
                           None)
            if pattern is not None:
                found.append((manager, name, version, pattern))
    return found


def added_packages(packages: Packages, before: Packages) -> list[tuple[str, str, str]]:
    """(manager, package, version) of each package not in ``before`` (a new version counts as added)."""
    return [(manager, name, version) for manager in sorted(packages)
            for name, version in sorted(packages[manager].items())
            if (before.get(manager) or {}).get(name) != version]


def evaluate(budget: Budget, images: Sequence[PlatformImage], stables: Mapping[str, Stable | None],
             packages: Mapping[str, Packages], sizes: Mapping[str, Mapping[str, int]] | None = None) -> Verdict:
    """The verdict of ``budget`` on ``images`` (one per platform), their quarter-stables ({platform: stable or
    None}) and their package lists ({platform: packages}); ``sizes``: installed bytes of packages, where known."""
    violations: list[Violation] = []
    usage: dict[str, Any] = {}
    multi = len(images) > 1
    if budget.size is not None:
        usage["size"] = {"limit": budget.size, "used": {i.platform: i.size for i in images}}
        for image in images:
            if image.size > budget.size:
                violations.append(Violation(BudgetKind.SIZE, image.platform, (
                    f"size {size_text(image.size)} compressed{_on(image.platform, multi)} is over the budget of "
                    f"{size_text(budget.size)} by {size_text(image.size - budget.size)}")))
    if budget.growth is not None:
        usage["growth"] = _growth(budget.growth, images, stables, violations, multi)
    if budget.deny:
        usage["deny"] = _deny(budget.deny, images, packages, violations, multi)
    details = _details(images, stables, packages, sizes or {}, multi) if violations else ()
    return Verdict(tuple(violations), usage, details)


def _on(platform: str, multi: bool) -> str:
    return f" ({platform})" if multi else ""


def _growth(limit: float, images: Sequence[PlatformImage], stables: Mapping[str, Stable | None],
            violations: list[Violation], multi: bool) -> dict[str, Any]:
    used: dict[str, Any] = {}
    for image in images:
        stable = stables.get(image.platform)
        if stable is None:
            used[image.platform] = None  # no quarter-stable (of this platform): not applied
            continue
        grown = growth_percent(image.size, stable.size)
        used[image.platform] = {"percent": round(grown, 3), "stable": stable.tag, "stable_size": stable.size,
                                "size": image.size}
        if grown > limit:
            violations.append(Violation(BudgetKind.GROWTH, image.platform, (
                f"growth {grown:.2f}% over {stable.tag}{_on(image.platform, multi)} ({size_text(stable.size)} -> "
                f"{size_text(image.size)}) is over the budget of {limit:g}%")))
    return {"limit": limit, "used": used}


def _deny(deny: Mapping[str, Sequence[str]], images: Sequence[PlatformImage], packages: Mapping[str, Packages],
          violations: list[Violation], multi: bool) -> dict[str, Any]:
    found: list[dict[str, str]] = []
    for image in images:
        hits = denied(packages.get(image.platform) or {}, deny)
        for manager, name, version, pattern in hits:
            found.append({"platform": image.platform, "manager": manager, "package": name, "version": version,
                          "pattern": pattern})
        if hits:
            violations.append(Violation(BudgetKind.DENY, image.platform, "denied packages" + _on(image.platform, multi)
                                        + ": " + ", ".join(f"{m} {n} {v} (matches {p!r})" for m, n, v, p in hits)))
    return {"patterns": {m: list(p) for m, p in deny.items()}, "found": found}


def _details(images: Sequence[PlatformImage], stables: Mapping[str, Stable | None], packages: Mapping[str, Packages],
             sizes: Mapping[str, Mapping[str, int]], multi: bool) -> tuple[str, ...]:
    """The layers that grew most and the packages added since the stable, for each platform."""
    details = []
    for image in images:
        stable = stables.get(image.platform)
        where = _on(image.platform, multi)
        grown = grown_layers(image.layers, stable.layers if stable else None)
        title = f"layers that grew most since {stable.tag}{where}" if stable else f"largest layers{where}"
        details.append(f"{title}: " + (", ".join(
            f"+{size_text(g)}" + (f" (was {size_text(b)})" if b is not None else "") +
            f" by {_step(layer.created_by)[:200]}" for layer, g, b in grown) or "none"))
        if stable is None:
            details.append(f"packages added since the stable{where}: no quarter-stable yet")
        elif stable.packages is None:
            details.append(f"packages added since {stable.tag}{where}: unknown ({stable.tag} has no SBOM)")
        else:
            added = added_packages(packages.get(image.platform) or {}, stable.packages)
            shown = ", ".join(f"{m} {n} {v}" + (f" ({size_text(sizes[m][n])} installed)" if n in sizes.get(m, {})
                                                 else "") for m, n, v in added[:SHOWN_PACKAGES])
            more = f" and {len(added) - SHOWN_PACKAGES} more" if len(added) > SHOWN_PACKAGES else ""
            details.append(f"packages added since {stable.tag}{where}: {shown or 'none'}{more}")
    return tuple(details)
