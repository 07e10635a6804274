"""Run an image's tests with pytest against the just-built image, and read the JUnit results."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from stack_builder import signals
from stack_builder.engine.containers import run_env
from stack_builder.errors import Interrupted, StepFailed, shown
from stack_builder.records import junit as junit_files
from stack_builder.records.logfile import copy_lines, open_log
from stack_builder.records.results import TestCounts
from stack_builder.registry.credentials import without_secrets
from stack_builder.settings import environment
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

COMMON = Path("images/tests_common")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
TEST_TIMEOUT_S = 1800  # default: 30 minutes per image's test run (spec `timeouts: {tests: N}`, --timeout tests=N)


@dataclass
class TestOutcome:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    junit: str | None = None
    failures: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def counts(self) -> TestCounts:
        return TestCounts(self.passed, self.failed, self.skipped, self.junit, list(self.failures))


def test_dirs(spec: Spec, name: str) -> list[Path]:
    """tests_common, then each ancestor's test/ (root first), then the image's own test/."""
    chain = [*reversed(spec.ancestors(name)), name]
    dirs = [spec.stack_dir / COMMON] + [spec.images[n].context / "test" for n in chain]
    if spec.images[name].integration_tests:
        dirs.append(spec.images[name].context / "integration_tests")
    return [d for d in dirs if d.is_dir()]


def conftest_files(spec: Spec, dirs: list[Path]) -> list[Path]:
    """The ``conftest.py`` files pytest loads for ``dirs`` besides those inside them: in every folder from the
    stack's top down to each test folder (pytest looks no higher: ``--confcutdir`` is the stack's top)."""
    top = spec.stack_dir.resolve()
    found: dict[Path, None] = {}
    for folder in dirs:
        here = folder.resolve().parent
        while here.is_relative_to(top):
            if (here / "conftest.py").is_file():
                found[here / "conftest.py"] = None
            if here == top:
                break
            here = here.parent
    return sorted(found)


def run_tests(spec: Spec, name: str, image: str, *, junit: Path, log: Path, dirs: list[Path] | None = None,
              extra_env: dict[str, str] | None = None, timeout_s: float | None = None) -> TestOutcome:
    """Run the image's tests (or ``dirs``); raise ``TestsFailed`` naming the failing tests when any fail."""
    dirs = test_dirs(spec, name) if dirs is None else dirs
    junit.parent.mkdir(parents=True, exist_ok=True)
    if not dirs:
        LOGGER.warning("%s: no tests found (images/tests_common, test/ folders): nothing was checked", name)
        return TestOutcome()
    env = {**without_secrets(environment()), **run_env()}  # the run's id labels the containers the tests start
    for declared in spec.images.values():  # build secrets are for builds only, never for tests
        for variable in declared.secrets.values():
            env.pop(variable, None)  # (also when this spec was loaded without declaring them)
    env.update(extra_env or {})
    env["STACK_IMAGE"] = image
    env["STACK_IMAGE_NAME"] = name
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # The stack's top is not put on sys.path (Python 3.11+): a test imports only what the input key hashes.
    env["PYTHONSAFEPATH"] = "1"
    command = [sys.executable, "-m", "pytest", *map(str, dirs), f"--junitxml={junit}", "-p", "stack_builder.checks.pytest_plugin",
               "-p", "no:cacheprovider", "--import-mode=importlib", "-c", os.devnull,
               f"--rootdir={spec.stack_dir}", f"--confcutdir={spec.stack_dir}", "-q", "-o", f"junit_suite_name={name}"]
    limit = timeout_s or TEST_TIMEOUT_S
    with open_log(log) as out:
        out.write(f"$ pytest {' '.join(str(d.relative_to(spec.stack_dir)) for d in dirs)}\n")
        out.flush()
        with subprocess.Popen(command, cwd=spec.stack_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True) as proc, signals.child(proc):
            copier = copy_lines(proc.stdout, out) if proc.stdout else None  # time-stamped, as it comes
            try:
                returncode = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                signals.end(proc)
                out.write(f"\n== tests timed out after {limit:.0f} s: stopped\n")
                raise StepFailed(f"tests timed out after {limit:.0f} s") from None
            finally:
                if copier is not None:
                    copier.join(timeout=10)
    if signals.stopping():
        raise Interrupted(f"the tests were stopped ({signals.signal_name()})")
    junit_files.label_cases(junit, name, env.get("STACK_PLATFORM", "") or "native")
    outcome = read_junit(junit)
    if returncode == 5 and outcome.passed == 0:
        LOGGER.warning("%s: pytest collected no tests in %s", name, ", ".join(map(str, dirs)))
        return outcome
    if returncode != 0 or outcome.failed:
        names = ", ".join(outcome.failures[:5]) or f"pytest exited {returncode}; see {log}"
        more = f" (+{len(outcome.failures) - 5} more)" if len(outcome.failures) > 5 else ""
        why = f": {shown(' '.join(outcome.messages[0].split()), 200)}" if outcome.messages and outcome.messages[0] else ""
        raise TestsFailed(outcome, f"tests failed: {names}{more}{why}")
    return outcome


class TestsFailed(StepFailed):
    """Tests ran and some failed; carries the counts for the report."""

    def __init__(self, outcome: TestOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def read_junit(path: Path) -> TestOutcome:
    """Counts and failing test ids from a JUnit XML file (an unreadable file counts as no results)."""
    outcome = TestOutcome(junit=str(path))
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return outcome
    for case in root.iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome.failed += 1
            outcome.failures.append(test_id)
            outcome.messages.append(problem.get("message") or (problem.text or "").strip()[:300])
        elif case.find("skipped") is not None:
            outcome.skipped += 1
        else:
            outcome.passed += 1
    return outcome
