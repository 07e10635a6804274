"""The builder's package type-checks cleanly with mypy."""
from __future__ import annotations

import subprocess
import sys

from stacks import REPO


def test_package_is_mypy_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "scripts", "dodo.py"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
