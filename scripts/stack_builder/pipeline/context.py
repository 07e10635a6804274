"""What the jobs of one build run share: the plan, the clients, the report, and parents as they appear."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from stack_builder.engine.client import Engine
from stack_builder.plan.plan import ParentRef, Plan
from stack_builder.plan.revision import Revision
from stack_builder.records.report import BuildReport
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.records.wiki import Wiki
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.registry.credentials import Credentials
from stack_builder.registry.lookups import Lookups
from stack_builder.retry import RetryPolicy
from stack_builder.spec.references import Repository
from stack_builder.spec.stack_spec import Spec


LOGGER = logging.getLogger(__name__)


@dataclass
class PlatformOutcome:
    """One platform of one image after build, tests and checks."""

    platform: str
    ok: bool = False
    reason: str = ""
    image_id: str | None = None
    digest: str | None = None
    parent: str | None = None
    input_key: str | None = None
    reused_from: str | None = None  # the tag whose image (same input key) stands in for a build
    interrupted: bool = False  # stopped by a signal (the reason says during which step)
    recipe: str | None = None  # which recipe built it, when the image has several
    recipes_failed: dict[str, str] = field(default_factory=dict)  # recipe -> why it failed (tried before)
    tests: TestCounts = field(default_factory=TestCounts)
    model: ModelResult | None = None


@dataclass
class BuildContext:
    spec: Spec
    plan: Plan
    revision: Revision
    registry_host: str
    push: bool
    artifacts: Path
    engine: Engine
    registry: RegistryClient
    credentials: Credentials | None
    report: BuildReport
    wiki: Wiki | None = None
    lookups: Lookups | None = None  # None when the registry is not asked (a --no-push run without one)
    reuse: bool = False
    run_id: str = ""  # every container of this run is labelled io.stack-builder.run=<run_id>
    timeouts: Mapping[str, int] = field(default_factory=dict)  # --test-timeout and the like, over the spec's
    steps: dict[str, str] = field(default_factory=dict)  # image -> the step it is in now, for interruptions
    observer: Callable[[str, str, int, int], None] | None = None  # (image, step, done, total): a live display
    moved: dict[str, dict[str, str]] = field(default_factory=dict)  # image -> {tag: digest} written this run
    notes: dict[str, list[str]] = field(default_factory=dict)  # image -> what the report must also say
    signing: Signing | None = None  # cosign, when STACK_SIGNING_KEY (or keyless signing) is set
    push_policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(retries=4, backoff_s=1.0))
    native: str = field(default_factory=multiarch.native_platform)
    parents: dict[tuple[str, str], ParentRef] = field(default_factory=dict)
    outcomes: dict[str, dict[str, PlatformOutcome]] = field(default_factory=dict)
    began: dict[str, float] = field(default_factory=dict)
    wiki_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.parents.update(self.plan.parents)

    def repository(self, name: str) -> Repository:
        return self.spec.images[name].repository.on(self.registry_host)

    def multi(self, name: str) -> bool:
        return len(self.spec.images[name].platforms) > 1

    def auth(self) -> dict[str, str] | None:
        return self.credentials.auth_config() if self.credentials else None

    def log_path(self, name: str, platform: str | None = None) -> Path:
        suffix = f"-{platform.replace('/', '-')}" if platform and self.multi(name) else ""
        return self.artifacts / "logs" / f"{name}{suffix}.log"

    def duration(self, name: str) -> float:
        """Seconds from the image's first platform job starting to now."""
        return round(time.monotonic() - self.began.get(name, time.monotonic()), 2)

    def timeout(self, name: str, kind: str) -> int:
        """Seconds the ``kind`` check of ``name`` may run: the command line's, else the spec's."""
        return self.timeouts.get(kind) or self.spec.images[name].timeouts[kind]

    def enter(self, name: str, step: str) -> None:
        """``name`` starts ``step``: tell the live display when there is one (a terminal), else say so in one
        plain, timestamped line (nothing redrawn: a pipe, CI), with the run's [done/total]."""
        self.steps[name] = step
        done = sum(1 for n in self.plan.images if self.report.images[n].status not in ("pending",))
        if self.observer is not None:
            self.observer(name, step, done, len(self.plan.images))
        else:
            LOGGER.info("[%d/%d] %s: %s (%.0fs in)", done, len(self.plan.images), name, step, self.duration(name))

    def step_of(self, name: str) -> str:
        step = self.steps.get(name)
        return f"during {step}" if step else "before it started"

    def parent_for_children(self, name: str, platform: str, parent: ParentRef) -> None:
        for child in self.spec.children(name):
            self.parents[(child, platform)] = parent
