"""Run steps over a graph, at most ``workers`` at a time, and isolate failures.

The scheduler knows nothing about images or Docker. A step is a callable that receives the results of
the steps it depends on and returns its own result: a typed, immutable value that says whether it
succeeded (``ok``). A step starts once every step it ``requires`` has succeeded and every step it runs
``after`` has finished. A step whose requirement failed (or was skipped) is skipped and never runs; so
is a step that runs after a skipped one. Everything else still runs: one failure never stops another
branch. Once ``stop()`` is true, nothing new starts: the steps still waiting are cancelled, the running
ones are waited for. Results travel only from a step to the steps that depend on it.
"""
from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Generic, Hashable, Iterable, Mapping, Protocol, TypeVar

LOGGER = logging.getLogger(__name__)


class StepState(str, Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Result(Protocol):
    @property
    def ok(self) -> bool: ...


R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class Step(Generic[R]):
    key: Hashable
    run: Callable[[Mapping[Hashable, R]], R]  # receives the results of ``requires`` and ``after`` that exist
    requires: tuple[Hashable, ...] = ()  # must have succeeded
    after: tuple[Hashable, ...] = ()  # must have finished, whatever the outcome


@dataclass(frozen=True)
class Outcome(Generic[R]):
    state: StepState
    cause: Hashable | None = None  # for a skipped step: the failed step that caused it
    result: R | None = None  # what the step returned (None when it never ran, or raised)


def run_steps(steps: Iterable[Step[R]], *, workers: int,
              on_skip: Callable[[Hashable, Hashable], None] | None = None,
              stop: Callable[[], bool] | None = None,
              on_cancel: Callable[[Hashable], None] | None = None,
              on_done: Callable[[Hashable, R], None] | None = None) -> dict[Hashable, Outcome[R]]:
    """Run every step once its conditions hold (until ``stop()``); return each step's outcome.

    The hooks run on the calling thread, one at a time: ``on_done`` with each result as it arrives.
    """
    graph = _Graph(steps)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="step") as pool:
        while graph.pending or graph.running:
            if stop is not None and stop():
                for key in graph.cancel_pending():
                    if on_cancel is not None:
                        on_cancel(key)
            for key, cause in graph.start_or_skip(pool):
                if on_skip is not None:
                    on_skip(key, cause)
            if not graph.running:
                if graph.pending:  # nothing runs and nothing can start: a cycle, which the spec forbids
                    raise ValueError(f"steps can never start (a cycle?): {list(graph.pending)!r}")
                break
            finished, _ = wait(graph.running, return_when=FIRST_COMPLETED)
            for future in finished:
                key, result = graph.finish(future)
                if on_done is not None and result is not None:
                    on_done(key, result)
    return graph.done


class _Graph(Generic[R]):
    """The steps of one run: waiting, running and done (touched by the calling thread only)."""

    def __init__(self, steps: Iterable[Step[R]]) -> None:
        self.pending = {step.key: step for step in steps}
        for step in self.pending.values():
            unknown = [k for k in (*step.requires, *step.after) if k not in self.pending]
            if unknown:
                raise ValueError(f"step {step.key!r} depends on unknown steps {unknown!r}")
        self.done: dict[Hashable, Outcome[R]] = {}
        self.running: dict[Future[R], Hashable] = {}

    def blocked_by(self, step: Step[R]) -> Hashable | None:
        """The cause to skip ``step`` for, if any of its conditions can no longer hold."""
        for key in step.requires:
            outcome = self.done.get(key)
            if outcome is not None and outcome.state is not StepState.OK:
                return outcome.cause if outcome.state is StepState.SKIPPED else key
        for key in step.after:
            outcome = self.done.get(key)
            if outcome is not None and outcome.state is StepState.SKIPPED:
                return outcome.cause
        return None

    def ready(self, step: Step[R]) -> bool:
        return all(k in self.done for k in (*step.requires, *step.after))

    def inputs(self, step: Step[R]) -> dict[Hashable, R]:
        found = {key: self.done[key].result for key in (*step.requires, *step.after)}
        return {key: result for key, result in found.items() if result is not None}

    def cancel_pending(self) -> list[Hashable]:
        cancelled = list(self.pending)
        for key in cancelled:
            del self.pending[key]
            self.done[key] = Outcome(StepState.CANCELLED)
        return cancelled

    def start_or_skip(self, pool: ThreadPoolExecutor) -> list[tuple[Hashable, Hashable]]:
        """Start every step that can start; skip every one that never can. Returns the skipped, with causes."""
        skipped = []
        progressed = True
        while progressed:  # skips can unblock or skip other steps: settle them before waiting
            progressed = False
            for key, step in list(self.pending.items()):
                cause = self.blocked_by(step)
                if cause is not None:
                    del self.pending[key]
                    self.done[key] = Outcome(StepState.SKIPPED, cause)
                    skipped.append((key, cause))
                    progressed = True
                elif self.ready(step):
                    del self.pending[key]
                    self.running[pool.submit(step.run, self.inputs(step))] = key
        return skipped

    def finish(self, future: Future[R]) -> tuple[Hashable, R | None]:
        key = self.running.pop(future)
        self.done[key] = _finished(key, future)
        return key, self.done[key].result


def _finished(key: Hashable, future: Future[R]) -> Outcome[R]:
    try:
        result = future.result()
    except Exception:  # a step must not raise; if one does, it is our bug: fail it, keep going
        LOGGER.exception("step %r raised", key)
        return Outcome(StepState.FAILED)
    return Outcome(StepState.OK if result.ok else StepState.FAILED, result=result)
