"""Which engine takes a job: pure, so that it is tested alone.

A job (an image on one platform) goes to an engine of that platform's pool that is not lost and has fewer
than ``workers`` jobs: first the engine that built the image's parent on that platform (its cache holds the
parent's layers), then the least busy, then the first in the file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

LOGGER = logging.getLogger(__name__)


@dataclass
class Load:
    """The engines' state during a run: jobs running on each, the engines lost, and who built what."""

    workers: int
    running: dict[str, int] = field(default_factory=dict)
    lost: dict[str, str] = field(default_factory=dict)  # engine -> why it was given up
    built_on: dict[tuple[str, str], str] = field(default_factory=dict)  # (image, platform) -> engine

    def choose(self, pool: Sequence[str], parent: str | None, platform: str) -> str | None:
        """The engine for a job of ``platform`` whose parent image is ``parent``, or None while every engine
        of its pool is busy (or lost: ``alive`` says which)."""
        free = [name for name in pool if name not in self.lost and self.running.get(name, 0) < self.workers]
        if not free:
            return None
        cached = self.built_on.get((parent, platform)) if parent else None
        if cached in free:
            return cached
        return min(free, key=lambda name: (self.running.get(name, 0), pool.index(name)))

    def alive(self, pool: Sequence[str]) -> list[str]:
        return [name for name in pool if name not in self.lost]

    def start(self, engine: str) -> None:
        self.running[engine] = self.running.get(engine, 0) + 1

    def finish(self, engine: str, image: str, platform: str, ok: bool) -> None:
        self.running[engine] -= 1
        if ok:
            self.built_on[(image, platform)] = engine
