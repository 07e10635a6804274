"""How long each kind of check may run: the defaults a spec starts from, and the command line's overrides."""
from __future__ import annotations

from typing import Mapping

from stack_builder.errors import StackError

# Seconds a check may run: the image's tests, each model check container, its GPU tests, its info commands.
DEFAULT_TIMEOUTS = {"tests": 1800, "model": 900, "gpu_tests": 3600, "info_cmds": 600}


def check_timeouts(values: Mapping[str, int]) -> dict[str, int]:
    """Timeouts from the command line ({kind: seconds}, 0 for "the spec's"), checked; they override the spec."""
    found: dict[str, int] = {}
    for kind, seconds in values.items():
        if not seconds:
            continue
        if not 1 <= seconds <= 86400:
            option = "--test-timeout" if kind == "tests" else f"--{kind.removesuffix('_cmds')}-timeout"
            raise StackError(f"{option} {seconds}: give a whole number of seconds from 1 to 86400")
        found[kind] = seconds
    return found
