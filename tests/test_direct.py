"""`stack-builder tag` and `yank` without doit: the same parameters as their doit tasks, every default filled
in, and anything else left to doit (its own handling and messages)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stack_builder.apps import direct, params


def test_the_commands_options_with_every_default() -> None:
    folder, command, options = direct.parse(["tag", "--tag", "2024.1-main", "--skip-gpu-test"])
    assert (folder, command) == (None, "tag")
    assert options == {"tag": "2024.1-main", "global_stable": False, "dry_run": False, "skip_gpu_test": True,
                       "allow_platform_drop": False, "rollback": False, "registry": ""}


def test_values_after_an_equals_sign_and_the_stack_folder_before_the_command(tmp_path: Path) -> None:
    for before in (["-d", str(tmp_path)], ["--dir", str(tmp_path)], [f"--dir={tmp_path}"]):
        folder, _, options = direct.parse([*before, "yank", "--image=base", "--digest", "sha256:1",
                                           "--reason=a=b"])
        assert folder == str(tmp_path)
        assert (options["image"], options["digest"], options["reason"]) == ("base", "sha256:1", "a=b")


@pytest.mark.parametrize("command", sorted(direct.COMMANDS))
def test_every_parameter_of_the_doit_task_is_taken(command: str) -> None:
    for declared in direct.COMMANDS[command][1]:
        value: Any = True if declared["type"] is bool else "x"
        given = [f"--{declared['long']}"] if value is True else [f"--{declared['long']}", value]
        assert direct.parse([command, *given])[2][declared["name"]] == value, declared["name"]
    assert direct.COMMANDS == {"tag": ("tag", params.TAG), "yank": ("yank", params.YANK)}


def test_lists_and_whole_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(direct.COMMANDS, "probe", ("probe", [
        {"name": "image", "long": "image", "default": [], "type": list},
        {"name": "workers", "long": "workers", "default": 1, "type": int}]))
    options = direct.parse(["probe", "--image", "a", "--image=b", "--workers", "3"])[2]
    assert options == {"image": ["a", "b"], "workers": 3}
    assert direct.parse(["probe"])[2] == {"image": [], "workers": 1}  # a fresh list: the default is never changed
    with pytest.raises(direct.NotDirect):
        direct.parse(["probe", "--workers", "three"])


@pytest.mark.parametrize("args", [
    [], ["build", "--all"], ["list"], ["--version"], ["tag", "--help"], ["tag", "--nope"], ["tag", "--tag"],
    ["tag", "--dry-run=yes"], ["tag", "--tag", "2024.1-main", "build"], ["tag", "name=value"],
    ["-d", "/no/such/folder", "tag", "--tag", "2024.1-main"], ["-d"], ["--dir=/no/such/folder", "tag"],
])
def test_anything_else_is_left_to_doit(args: list[str]) -> None:
    with pytest.raises(direct.NotDirect):
        direct.parse(args)
    assert direct.run(args) is None
