"""The scheduler runs callables over a graph: order, concurrency and failure isolation, with no Docker."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping

import pytest

from stack_builder.pipeline.scheduler import Step, StepState, run_steps

OK, FAILED, SKIPPED = StepState.OK, StepState.FAILED, StepState.SKIPPED


@dataclass(frozen=True)
class Done:
    """A step's typed result: whether it succeeded, and what it made."""

    ok: bool
    value: str = ""


Inputs = Mapping[Hashable, Done]


def plain(run: Callable[[], bool]) -> Callable[[Inputs], Done]:
    return lambda inputs: Done(run())


def recorder() -> tuple[list[str], threading.Lock]:
    return [], threading.Lock()


def step(key: str, log: list[str], *, ok: bool = True, requires: tuple[Hashable, ...] = (),
         after: tuple[Hashable, ...] = (), pause: float = 0.0) -> Step[Done]:
    def run(inputs: Inputs) -> Done:
        time.sleep(pause)
        log.append(key)
        return Done(ok, key)

    return Step(key, run, requires=requires, after=after)


def test_requirements_run_first_and_everything_runs() -> None:
    log: list[str] = []
    steps = [step("leaf", log, requires=("mid",)), step("mid", log, requires=("root",)), step("root", log)]
    outcomes = run_steps(steps, workers=2)
    assert log == ["root", "mid", "leaf"]
    assert {k: o.state for k, o in outcomes.items()} == {"root": OK, "mid": OK, "leaf": OK}


def test_a_failure_skips_only_what_requires_it_and_names_the_cause() -> None:
    log: list[str] = []
    skipped: dict[Hashable, Hashable] = {}
    steps = [step("root", log), step("bad", log, ok=False, requires=("root",)),
             step("under-bad", log, requires=("bad",)), step("deep", log, requires=("under-bad",)),
             step("sibling", log, requires=("root",))]
    outcomes = run_steps(steps, workers=2, on_skip=lambda key, cause: skipped.__setitem__(key, cause))
    assert outcomes["bad"].state == FAILED
    assert outcomes["sibling"].state == OK and "sibling" in log
    assert outcomes["under-bad"] == outcomes["deep"]
    assert outcomes["deep"].state == SKIPPED and outcomes["deep"].cause == "bad"
    assert skipped == {"under-bad": "bad", "deep": "bad"}
    assert "under-bad" not in log and "deep" not in log


def test_after_waits_for_failed_steps_but_not_for_their_success() -> None:
    log: list[str] = []
    steps = [step("amd64", log, ok=False), step("arm64", log, pause=0.05),
             step("publish", log, after=("amd64", "arm64"))]
    outcomes = run_steps(steps, workers=2)
    assert outcomes["publish"].state == OK
    assert log[-1] == "publish"


def test_a_step_that_raises_fails_alone() -> None:
    def boom() -> bool:
        raise RuntimeError("our bug")

    log: list[str] = []
    outcomes = run_steps([Step("boom", plain(boom)), step("other", log), step("child", log, requires=("boom",))], workers=1)
    assert outcomes["boom"].state == FAILED and outcomes["other"].state == OK
    assert outcomes["child"].state == SKIPPED


def test_independent_steps_run_at_the_same_time() -> None:
    started = threading.Barrier(2, timeout=5)

    def together() -> bool:
        started.wait()  # both must be running at once, or this times out and fails
        return True

    outcomes = run_steps([Step("a", plain(together)), Step("b", plain(together))], workers=2)
    assert {o.state for o in outcomes.values()} == {OK}


def test_workers_bound_the_concurrency() -> None:
    # Steps meet three at a time: with fewer than 3 workers the barrier times out and the steps fail;
    # with more, the counter sees a fourth step running.
    meet, running, peak, lock = threading.Barrier(3, timeout=10), [0], [0], threading.Lock()

    def counted() -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        meet.wait()
        with lock:
            running[0] -= 1
        return True

    outcomes = run_steps([Step(i, plain(counted)) for i in range(6)], workers=3)
    assert {o.state for o in outcomes.values()} == {OK}
    assert peak[0] == 3


def test_unknown_requirements_and_cycles_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown steps"):
        run_steps([Step("a", lambda inputs: Done(True), requires=("nope",))], workers=1)
    with pytest.raises(ValueError, match="can never start"):
        run_steps([Step("a", lambda inputs: Done(True), requires=("b",)), Step("b", lambda inputs: Done(True), requires=("a",))], workers=1)


def test_once_stop_is_true_nothing_new_starts_and_the_rest_is_cancelled() -> None:
    ran: list[str] = []
    stopped = {"now": False}

    def step(name: str) -> Step[Done]:
        def run(inputs: Inputs) -> Done:
            ran.append(name)
            stopped["now"] = name == "a"  # the signal comes while the first step runs
            return Done(True)
        return Step(name, run, requires=() if name == "a" else ("a",))

    cancelled: list[object] = []
    outcomes = run_steps([step("a"), step("b"), step("c")], workers=1, stop=lambda: stopped["now"],
                         on_cancel=cancelled.append)
    assert ran == ["a"]
    assert outcomes["a"].state is StepState.OK
    assert outcomes["b"].state is outcomes["c"].state is StepState.CANCELLED
    assert sorted(map(str, cancelled)) == ["b", "c"]


def test_a_step_receives_the_results_of_its_requirements_and_after_steps_and_nothing_else() -> None:
    seen: dict[str, dict[Hashable, str]] = {}

    def step(key: str, ok: bool = True) -> Callable[[Inputs], Done]:
        def run(inputs: Inputs) -> Done:
            seen[key] = {k: v.value for k, v in inputs.items()}
            return Done(ok, f"made by {key}")
        return run

    done: list[tuple[Hashable, str]] = []
    outcomes = run_steps([Step("parent", step("parent")), Step("native", step("native", ok=False)),
                          Step("other", step("other"), after=("native",)), Step("unrelated", step("unrelated")),
                          Step("child", step("child"), requires=("parent",), after=("other", "native"))],
                         workers=2, on_done=lambda key, result: done.append((key, result.value)))
    assert seen["child"] == {"parent": "made by parent", "other": "made by other", "native": "made by native"}
    assert seen["other"] == {"native": "made by native"}  # a failed step's result still reaches "after" steps
    assert seen["parent"] == {} and seen["unrelated"] == {}
    result = outcomes["child"].result
    assert result is not None and result.value == "made by child"
    assert sorted(done) == sorted((k, f"made by {k}") for k in seen)
