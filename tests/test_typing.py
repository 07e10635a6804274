"""The builder's package, its tests and its benchmarks type-check cleanly with mypy --strict.

pyproject's [tool.mypy] says how: the package from its source, the tests' helper modules on the path,
and the predecessor's code under tests/fixtures left out (a test input, not ours to type).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from stacks import REPO

# Both runs share mypy's cache folder: under xdist they run one after the other, on one worker.
pytestmark = pytest.mark.xdist_group("mypy")


def mypy_strict(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", *paths], cwd=REPO,
                          capture_output=True, text=True, check=False)


def test_package_is_mypy_strict_clean() -> None:
    result = mypy_strict("scripts/stack_builder", "dodo.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_tests_and_benchmarks_are_mypy_strict_clean() -> None:
    result = mypy_strict("tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
