"""Budgets an image must keep to be pushed: its compressed size, its growth over the quarter-stable, and the
packages it must not hold (``budget:`` in spec.yml, for the stack and per image).

Sizes are bytes: a whole number, or a number with a unit. Units are case-insensitive: B; kB, MB, GB, TB are
powers of 1000 (as ``docker images`` and registries show sizes); KiB, MiB, GiB, TiB powers of 1024. A fraction
of a byte is dropped: "1.5GB" is 1500000000 bytes, "0.5KiB" 512.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from stack_builder.errors import shown
from stack_builder.spec.problems import Problems

MANAGERS = ("apt", "pip", "conda")  # the package managers the manifest container asks (checks/inventory.py)
UNITS = {"b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
         "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
SIZE_HINT = ("write a number of bytes, or a number with a unit: B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, "
             "GiB, TiB (powers of 1024), e.g. 1.5GB or 800MiB")


@dataclass(frozen=True)
class Budget:
    """An image's budget, the stack's merged with its own; None fields are not limited."""

    size: int | None = None  # the largest compressed size, bytes
    growth: float | None = None  # the largest growth over <prefix>-stable's compressed size, percent
    deny: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # manager -> name patterns (fnmatch)

    @property
    def limits(self) -> bool:
        """Whether it limits anything at all."""
        return self.size is not None or self.growth is not None or any(self.deny.values())


def parse_size(value: Any) -> int:
    """Bytes of a size as spec.yml writes it (see the module's docstring); ``ValueError`` says what is wrong."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size: {SIZE_HINT}")
    if isinstance(value, int):
        number, unit = Decimal(value), "b"
    else:
        match = _SIZE_RE.match(str(value))
        if match is None:
            raise ValueError(f"'{shown(str(value))}' is not a size: {SIZE_HINT}")
        unit = (match.group(2) or "b").lower()
        if unit not in UNITS:
            raise ValueError(f"'{shown(str(value))}' has an unknown unit '{shown(match.group(2))}': {SIZE_HINT}")
        try:
            number = Decimal(match.group(1))
        except InvalidOperation:
            raise ValueError(f"'{shown(str(value))}' is not a size: {SIZE_HINT}") from None
    found = int(number * UNITS[unit])
    if found < 1:
        raise ValueError(f"'{shown(str(value))}' is less than one byte: {SIZE_HINT}")
    return found


def size_text(size: int) -> str:
    """A size for people, with its exact bytes: ``1.50 GB (1500000000 bytes)``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            shown_value = f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
            return shown_value if unit == "B" else f"{shown_value} ({size} bytes)"
        value /= 1000
    raise AssertionError("unreachable")


def check(raw: Any, where: tuple[str | int, ...], problems: Problems) -> None:
    """The budget's size can be read (its shape is the schema's)."""
    if isinstance(raw, Mapping) and "size" in raw:
        try:
            parse_size(raw["size"])
        except ValueError as exc:
            problems.add((*where, "size"), str(exc))


def merged(stack: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> Budget | None:
    """The image's budget: its own keys over the stack's (``deny`` per manager: the image's list for a manager
    replaces the stack's, so ``deny: {pip: []}`` lifts the stack's pip patterns); None when neither sets one."""
    if not stack and not own:
        return None
    both = {**(stack or {}), **(own or {})}
    deny = {**((stack or {}).get("deny") or {}), **((own or {}).get("deny") or {})}
    size = both.get("size")
    growth = both.get("growth")
    budget = Budget(size=_size(size),
                    growth=float(growth) if growth is not None else None,
                    deny={m: tuple(str(p) for p in deny[m]) for m in MANAGERS if m in deny})
    return budget if budget.limits else None


def _size(value: Any) -> int | None:
    """The size, or None when there is none or it cannot be read (``check`` reported that already)."""
    try:
        return parse_size(value) if value is not None else None
    except ValueError:
        return None


def describe(budget: Budget) -> Iterable[str]:
    """Each limit of the budget, in words."""
    if budget.size is not None:
        yield f"size at most {size_text(budget.size)} compressed"
    if budget.growth is not None:
        yield f"growth at most {budget.growth:g}% over the quarter-stable"
    for manager, patterns in budget.deny.items():
        if patterns:
            yield f"no {manager} package matching {', '.join(patterns)}"
