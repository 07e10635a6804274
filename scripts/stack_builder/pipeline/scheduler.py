"""Run steps over a graph, at most ``workers`` at a time, and isolate failures.

The scheduler knows nothing about images or Docker: a step is a callable returning success. A step
starts once every step it ``requires`` has succeeded and every step it runs ``after`` has finished.
A step whose requirement failed (or was skipped) is skipped and never runs; so is a step that runs
after a skipped one. Everything else still runs: one failure never stops another branch.
Once ``stop()`` is true, nothing new starts: the steps still waiting are cancelled, the running
ones are waited for.
"""
from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable

LOGGER = logging.getLogger(__name__)

OK, FAILED, SKIPPED, CANCELLED = "ok", "failed", "skipped", "cancelled"


@dataclass(frozen=True)
class Step:
    key: Hashable
    run: Callable[[], bool]
    requires: tuple[Hashable, ...] = ()  # must have succeeded
    after: tuple[Hashable, ...] = ()  # must have finished, whatever the outcome


@dataclass(frozen=True)
class Outcome:
    status: str  # OK, FAILED, SKIPPED or CANCELLED
    cause: Hashable | None = None  # for a skipped step: the failed step that caused it


def run_steps(steps: Iterable[Step], *, workers: int,
              on_skip: Callable[[Hashable, Hashable], None] | None = None,
              stop: Callable[[], bool] | None = None,
              on_cancel: Callable[[Hashable], None] | None = None) -> dict[Hashable, Outcome]:
    """Run every step once its conditions hold (until ``stop()``); return each step's outcome."""
    pending = {step.key: step for step in steps}
    for step in pending.values():
        unknown = [k for k in (*step.requires, *step.after) if k not in pending]
        if unknown:
            raise ValueError(f"step {step.key!r} depends on unknown steps {unknown!r}")
    done: dict[Hashable, Outcome] = {}
    running: dict[Future[bool], Hashable] = {}

    def blocked_by(step: Step) -> Hashable | None:
        """The cause to skip ``step`` for, if any of its conditions can no longer hold."""
        for key in step.requires:
            outcome = done.get(key)
            if outcome is not None and outcome.status != OK:
                return outcome.cause if outcome.status == SKIPPED else key
        for key in step.after:
            outcome = done.get(key)
            if outcome is not None and outcome.status == SKIPPED:
                return outcome.cause
        return None

    def ready(step: Step) -> bool:
        return all(k in done for k in (*step.requires, *step.after))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="step") as pool:
        while pending or running:
            if stop is not None and stop():
                for key in list(pending):
                    del pending[key]
                    done[key] = Outcome(CANCELLED)
                    if on_cancel is not None:
                        on_cancel(key)
            progressed = True
            while progressed:  # skips can unblock or skip other steps: settle them before waiting
                progressed = False
                for key, step in list(pending.items()):
                    cause = blocked_by(step)
                    if cause is not None:
                        del pending[key]
                        done[key] = Outcome(SKIPPED, cause)
                        if on_skip is not None:
                            on_skip(key, cause)
                        progressed = True
                    elif ready(step):
                        del pending[key]
                        running[pool.submit(step.run)] = key
            if not running:
                if pending:  # nothing runs and nothing can start: a cycle, which the spec forbids
                    raise ValueError(f"steps can never start (a cycle?): {list(pending)!r}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                try:
                    succeeded = bool(future.result())
                except Exception:  # a step must not raise; if one does, it is our bug: fail it, keep going
                    LOGGER.exception("step %r raised", key)
                    succeeded = False
                done[key] = Outcome(OK if succeeded else FAILED)
    return done
