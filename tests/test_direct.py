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
                                           "--reason=a=b"])  # (after --reason=, an = is the value's)
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
    # doit takes a bare NAME=VALUE as a variable even where an option's value stands: the next word is the value
    ["yank", "--image", "base", "--digest", "sha256:1", "--reason", "severity=high", "--dry-run"],
])
def test_anything_else_is_left_to_doit(args: list[str]) -> None:
    with pytest.raises(direct.NotDirect):
        direct.parse(args)
    assert direct.run(args) is None


def doits_reading(command: str, args: list[str]) -> dict[str, Any]:
    """The options doit's own parser gives a task's arguments (its variables taken out first, as doit does)."""
    from doit.cmdparse import CmdOption, TaskParse

    kept = [arg for arg in args if arg.startswith("-") or "=" not in arg]
    parsed, _ = TaskParse([CmdOption(p) for p in direct.COMMANDS[command][1]]).parse(kept)
    return dict(parsed)


@pytest.mark.parametrize("args", [
    ["tag", "--tag", "2024.1-main"], ["tag", "--tag=2024.1-main", "--dry-run", "--registry", "h:5000"],
    ["tag", "--rollback", "--global-stable", "--skip-gpu-test", "--allow-platform-drop"],
    ["tag", "--tag", "--dry-run"], ["yank", "--image", "base", "--digest=sha256:1", "--reason", "a b", "--dry-run"],
    ["yank", "--reason=severity=high", "--dry-run"],
])
def test_what_it_takes_it_reads_as_doit_does(args: list[str]) -> None:
    assert direct.parse(args)[2] == doits_reading(args[0], args[1:])


def test_a_doit_configuration_here_leaves_the_command_to_doit(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["tag", "--tag", "2024.1-main"]
    assert direct.parse(args)[1] == "tag"
    (tmp_path / "pyproject.toml").write_text("[tool.doit.tasks.tag]\ndry_run = true\n")
    with pytest.raises(direct.NotDirect):
        direct.parse(args)
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "doit.cfg").write_text("[task:tag]\ndry_run = True\n")
    with pytest.raises(direct.NotDirect):
        direct.parse(args)
