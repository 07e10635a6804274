"""Typed results of an image's checks, as the build report and the gate records hold them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TestCounts:
    """pytest's results for one image (summed over its platforms)."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    junit: str | list[str] | None = None
    failures: list[str] = field(default_factory=list)

    @classmethod
    def total(cls, per_platform: dict[str, "TestCounts"]) -> "TestCounts":
        if len(per_platform) == 1:
            return next(iter(per_platform.values()))
        total = cls()
        for platform, counts in per_platform.items():
            total.passed += counts.passed
            total.failed += counts.failed
            total.skipped += counts.skipped
            total.failures += [f"{platform}: {f}" for f in counts.failures]
        junits = [c.junit for c in per_platform.values() if isinstance(c.junit, str)]
        total.junit = junits or None
        return total


@dataclass
class FunctionalResult:
    """The model's run on its examples: each check a named true/false, with details of what failed."""

    passed: bool
    checks: dict[str, bool]
    details: dict[str, Any] = field(default_factory=dict)
    output: str = ""  # the model's output on the examples (CSV), which the platforms of an image must agree on


@dataclass
class DriftResult:
    """The candidate against the current stable on n sampled inputs (n from Hoeffding's bound)."""

    status: str
    passed: bool
    n: int
    epsilon: float
    delta: float
    reuses: int
    tolerance: float
    max_disagreement: float
    candidate: str
    baseline: str | None = None
    baseline_digest: str | None = None
    baseline_tag: str | None = None
    sampled_with_replacement: bool | None = None
    disagreements: int | None = None
    observed_rate: float | None = None
    rate_upper_bound: float | None = None


@dataclass
class ModelResult:
    """Both model checks of one image (or, for a multi-platform image, of each platform)."""

    image_id: str
    functional: FunctionalResult
    drift: DriftResult
    digest: str | None = None  # the pushed digest the result is bound to
    recorded: bool | None = None  # whether the gate record reached the registry
    platforms: dict[str, "ModelResult"] | None = None

    @property
    def passed(self) -> bool:
        return self.functional.passed and self.drift.passed

    def summary(self) -> str:
        return f"functional {'passed' if self.functional.passed else 'failed'}, drift {self.drift.status}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merged(cls, per_platform: dict[str, "ModelResult"]) -> "ModelResult | None":
        """One result for a multi-platform image: functional passes only if it passed on every platform."""
        if not per_platform:
            return None
        first = next(iter(per_platform.values()))
        if len(per_platform) == 1:
            return first
        functional = FunctionalResult(all(r.functional.passed for r in per_platform.values()),
                                      first.functional.checks, first.functional.details)
        return cls(first.image_id, functional, first.drift, platforms=dict(per_platform))
