"""The credential hand-over, as a user's shell starts it: no code from the working folder, any size of secret.

No engine or registry needed: `list` is enough, since the hand-over happens before any task runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import DODO, STACK_BUILDER

DOIT = Path(sys.executable).parent / "doit"
PLANTED = """\
import pathlib, sys
pathlib.Path(__file__).with_name("planted-ran").write_text(" ".join(sys.argv))
raise SystemExit("the planted json.py ran")
"""


def run(command: list[str], folder: Path, password: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACK_", "GITHUB_", "COSIGN_"))}
    env.update(STACK_REGISTRY_USER="bot", STACK_REGISTRY_PASSWORD=password)
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False)


COMMANDS = {
    "stack-builder": [str(STACK_BUILDER), "list"],
    "doit -f dodo.py": [str(DOIT), "-f", str(DODO), "list"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_restarted_command_imports_nothing_from_the_working_folder(tmp_path: Path, command: str) -> None:
    # A pull request can add json.py to the stack's checkout, where CI runs the command.
    (tmp_path / "json.py").write_text(PLANTED)
    (tmp_path / "spec.yml").write_text("images: {}\n")
    result = run(COMMANDS[command], tmp_path, "canary-handover-1e5b")
    assert not (tmp_path / "planted-ran").exists(), result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "build" in result.stdout  # the tasks were listed, by the restarted command


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_secret_of_any_size_is_handed_over_without_a_hang(tmp_path: Path, command: str) -> None:
    big = "canary-" + "x" * (100 * 1024)  # over a pipe's buffer (64 KiB), under the limit of one variable (128 KiB)
    result = run(COMMANDS[command], tmp_path, big)  # a hang is a TimeoutExpired here
    assert result.returncode == 0, result.stderr[-2000:]
    assert "build" in result.stdout
