"""Bad settings in the environment: one clear line naming the variable and value, a non-zero exit, no traceback.

Each of these was a traceback before (float() of the timeout; requests' own error for a CA file that is not there).
"""
from __future__ import annotations

import os
import subprocess

import pytest

from stacks import REPO, STACK_BUILDER

CASES = {
    "a timeout that is not a number": ({"STACK_REGISTRY_TIMEOUT": "thirty"},
                                       "STACK_REGISTRY_TIMEOUT='thirty' is not a number of seconds above 0"),
    "a timeout of zero": ({"STACK_REGISTRY_TIMEOUT": "0"}, "STACK_REGISTRY_TIMEOUT='0' is not a number of seconds"),
    "a timeout that never ends": ({"STACK_REGISTRY_TIMEOUT": "inf"}, "STACK_REGISTRY_TIMEOUT='inf' is not a number"),
    "a CA file that is not there": ({"STACK_REGISTRY_CA": "/nowhere/ca.pem"},
                                    "STACK_REGISTRY_CA='/nowhere/ca.pem': no such file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_registry_setting_is_one_clear_error(case: str) -> None:
    settings, says = CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACK_", "GITHUB_"))}
    env.update(settings, STACK_REGISTRY="127.0.0.1:5999")  # never reached: the setting is refused first
    result = subprocess.run([str(STACK_BUILDER), "-d", str(REPO), "plan"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
