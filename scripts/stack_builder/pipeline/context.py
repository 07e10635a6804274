"""What the jobs of one build run share, read-only: the plan, the clients and the settings; and the values
that the steps hand each other, immutable: a ``PlatformOutcome`` per platform, an ``ImageOutcome`` per image.

Nothing here is a channel between steps: a step receives its requirements' results from the scheduler and
returns its own. The only shared, changing thing is ``Progress``, which says what each image is doing now,
for the live display and for an interrupted run's report.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from stack_builder import platforms
from stack_builder.engine.client import Engine
from stack_builder.engine.layersizes import SizeCache
from stack_builder.kinds import Reason
from stack_builder.plan.plan import ParentRef, Plan
from stack_builder.plan.revision import Revision
from stack_builder.records.report import ImageResult
from stack_builder.records.results import ModelResult, TestCounts
from stack_builder.records.wiki import Wiki
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.registry.statements import BuildStatement
from stack_builder.registry.credentials import Credentials
from stack_builder.registry.lookups import Lookups
from stack_builder.retry import RetryPolicy
from stack_builder.settings import Settings
from stack_builder.spec.references import Repository
from stack_builder.spec.stack_spec import Spec


LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlatformOutcome:
    """One platform of one image after build, tests and checks: what its step returns."""

    platform: str
    ok: bool = False
    reason: Reason | None = None  # why it failed (None when it passed)
    image_id: str | None = None
    digest: str | None = None  # a reused platform's digest (a built one gets its digest when it is pushed)
    parent: str | None = None
    input_key: str | None = None
    reused_from: str | None = None  # the tag whose image (same input key) stands in for a build
    interrupted: bool = False  # stopped by a signal (the reason says during which step)
    recipe: str | None = None  # which recipe built it, when the image has several
    recipes_failed: Mapping[str, str] = field(default_factory=dict)  # recipe -> why it failed (tried before)
    tests: TestCounts = field(default_factory=TestCounts)
    model: ModelResult | None = None
    statement: BuildStatement | None = None  # a reused platform's verified statement (None when not verified)

    @property
    def why(self) -> str:
        return self.reason.text if self.reason is not None else ""


@dataclass(frozen=True)
class ImageOutcome:
    """An image after its last step: its report entry, and what its children build on (per platform)."""

    result: ImageResult
    for_children: Mapping[str, ParentRef] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result.ok


class Progress:
    """Which step each image is in now, and since when: for the live display, the log lines, and the report
    of an interrupted run. Thread-safe; it carries no results."""

    def __init__(self, total: int, observer: Callable[[str, str, int, int], None] | None) -> None:
        self._lock = threading.Lock()
        self._total = total
        self._observer = observer
        self._steps: dict[str, str] = {}
        self._began: dict[str, float] = {}
        self._finished: set[str] = set()

    def begin(self, name: str) -> None:
        with self._lock:
            self._began.setdefault(name, time.monotonic())

    def finish(self, name: str) -> None:
        with self._lock:
            self._finished.add(name)

    def duration(self, name: str) -> float:
        """Seconds from the image's first platform job starting to now."""
        with self._lock:
            began = self._began.get(name)
        now = time.monotonic()
        return round(now - (began if began is not None else now), 2)

    def enter(self, name: str, step: str) -> None:
        """``name`` starts ``step``: tell the live display when there is one (a terminal), else say so in one
        plain, timestamped line (nothing redrawn: a pipe, CI), with the run's [done/total]."""
        with self._lock:
            self._steps[name] = step
            done = len(self._finished)
        if self._observer is not None:
            self._observer(name, step, done, self._total)
        else:
            LOGGER.info("[%d/%d] %s: %s (%.0fs in)", done, self._total, name, step, self.duration(name))

    def step_of(self, name: str) -> str:
        with self._lock:
            step = self._steps.get(name)
        return f"during {step}" if step else "before it started"


@dataclass(frozen=True)
class BuildContext:
    """The run's settings and clients: read by every step, written by none."""

    spec: Spec
    plan: Plan
    revision: Revision
    registry_host: str
    push: bool
    artifacts: Path
    engine: Engine
    registry: RegistryClient
    credentials: Credentials | None
    progress: Progress
    settings: Settings  # the task's, read once (config.settings): build secrets' values come from here
    wiki: Wiki | None = None
    lookups: Lookups | None = None  # None when the registry is not asked (a --no-push run without one)
    reuse: bool = False
    run_id: str = ""  # every container of this run is labelled io.stack-builder.run=<run_id>
    timeouts: Mapping[str, int] = field(default_factory=dict)  # --test-timeout and the like, over the spec's
    signing: Signing | None = None  # cosign, when STACK_SIGNING_KEY (or keyless signing) is set
    push_policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(retries=4, backoff_s=1.0))
    native: str = field(default_factory=platforms.host_platform)  # the engine's own: stack_build asks it
    wiki_lock: threading.Lock = field(default_factory=threading.Lock)  # the wiki's files are written one at a time
    allow_over_budget: bool = False  # --allow-over-budget: an image over its budget is pushed, with a warning
    layer_sizes: SizeCache = field(default_factory=SizeCache)  # compressed layer sizes measured in this run

    def repository(self, name: str) -> Repository:
        return self.spec.images[name].repository.on(self.registry_host)

    def multi(self, name: str) -> bool:
        return len(self.spec.images[name].platforms) > 1

    def auth(self) -> dict[str, str] | None:
        return self.credentials.auth_config() if self.credentials else None

    def log_path(self, name: str, platform: str | None = None) -> Path:
        suffix = f"-{platform.replace('/', '-')}" if platform and self.multi(name) else ""
        return self.artifacts / "logs" / f"{name}{suffix}.log"

    def timeout(self, name: str, kind: str) -> int:
        """Seconds the ``kind`` check of ``name`` may run: the command line's, else the spec's."""
        return self.timeouts.get(kind) or self.spec.images[name].timeouts[kind]

    def enter(self, name: str, step: str) -> None:
        self.progress.enter(name, step)

    def parent_from_plan(self, name: str, platform: str) -> ParentRef | None:
        """The parent the plan found for an image whose parent is not built in this run."""
        return self.plan.parents.get((name, platform))
