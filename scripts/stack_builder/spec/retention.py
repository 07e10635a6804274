"""The spec's ``retention`` section: what ``gc`` keeps of the per-commit builds (the schema checked its shape)."""
from __future__ import annotations

from dataclasses import dataclass

from stack_builder.spec.images import Spec

DEFAULT_BUILDS = 10  # per-commit builds kept per branch
DEFAULT_DAYS = 30  # per-commit builds younger than this are kept


@dataclass(frozen=True)
class Retention:
    builds: int = DEFAULT_BUILDS
    days: int = DEFAULT_DAYS


def retention_of(spec: Spec) -> Retention:
    section = spec.raw.get("retention") or {}
    return Retention(builds=int(section.get("builds", DEFAULT_BUILDS)), days=int(section.get("days", DEFAULT_DAYS)))
