"""The builder's package type-checks cleanly with mypy --strict."""
from __future__ import annotations

import subprocess
import sys

from stacks import REPO


def test_package_is_mypy_strict_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "scripts/stack_builder", "dodo.py"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
