"""Commands run without doit. A registry-side command (``tag``, ``yank``) has no file dependencies and always
runs: doit would only parse its options and call its app. So ``stack-builder`` parses the same parameters
(``params``) itself and calls the app at once, without loading doit: a promotion starts in a fraction of the
time. It says what doit says: ``.  tag`` first; on failure ``TaskFailed - taskid:tag`` and the message, exit 1; a
fault's traceback under ``TaskError - taskid:tag``, exit 2.

Anything this parser does not take as a whole (``--help``, an unknown option, a value of the wrong type, a
second task, a bare ``NAME=VALUE``, which doit reads as a variable even where an option's value stands, or a
doit configuration that could set defaults) goes to doit unchanged, for doit's own handling and messages.
``doit tag`` through a ``dodo.py`` runs the same app through doit.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

from stack_builder.apps import params

COMMANDS: dict[str, tuple[str, list[dict[str, Any]]]] = {  # command -> (app, its parameters)
    "tag": ("tag", params.TAG),
    "yank": ("yank", params.YANK),
}
FAILED, ERROR = 1, 2  # doit's exit statuses: a task failed; a task raised


class NotDirect(Exception):
    """Arguments this parser leaves to doit."""


def run(args: list[str]) -> int | None:
    """The exit status of a direct command, or None when ``args`` are doit's to run."""
    try:
        folder, command, options = parse(args)
    except NotDirect:
        return None
    if folder is not None:
        os.chdir(folder)
    from stack_builder.apps.runtime import Failed

    print(f".  {command}", file=sys.stderr)
    try:
        result = importlib.import_module(f"stack_builder.apps.{COMMANDS[command][0]}").main(**options)
    except Exception:  # a fault, not a user error (those are Failed): shown whole, as doit shows it
        print(f"TaskError - taskid:{command}\n{traceback.format_exc()}", file=sys.stderr)
        return ERROR
    if result is True:
        return 0
    message = result.message if isinstance(result, Failed) else "see the messages above"
    print(f"TaskFailed - taskid:{command}\n{message}\n", file=sys.stderr)
    return FAILED


def parse(args: list[str]) -> tuple[str | None, str, dict[str, Any]]:
    """(the stack folder of ``-d``, or None; the command; its options, every default filled in)."""
    folder, rest = _folder(args)
    if not rest or rest[0] not in COMMANDS or _doit_configured() or any(
            "=" in arg and not arg.startswith("-") for arg in rest):
        raise NotDirect  # (doit reads a bare NAME=VALUE as a variable, even where an option's value stands)
    command, given = rest[0], rest[1:]
    declared = {f"--{p['long']}": p for p in COMMANDS[command][1]}
    options = {str(p["name"]): list(p["default"]) if p["type"] is list else p["default"]
               for p in declared.values()}
    index = 0
    while index < len(given):
        name, has_value, value = given[index].partition("=")
        declaration = declared.get(name)
        if declaration is None:
            raise NotDirect
        if declaration["type"] is bool:
            if has_value:
                raise NotDirect
            options[declaration["name"]] = True
            index += 1
            continue
        if not has_value:
            if index + 1 >= len(given):
                raise NotDirect
            index, value = index + 1, given[index + 1]
        _store(options, declaration, value)
        index += 1
    return folder, command, options


def _folder(args: list[str]) -> tuple[str | None, list[str]]:
    """``-d DIR`` / ``--dir DIR`` / ``--dir=DIR`` before the command, when it names a folder."""
    if args[:1] in (["-d"], ["--dir"]) and len(args) > 1:
        folder, rest = args[1], args[2:]
    elif args[:1] and args[0].startswith("--dir="):
        folder, rest = args[0].removeprefix("--dir="), args[1:]
    else:
        return None, args
    if not os.path.isdir(folder):
        raise NotDirect  # doit's loader says so
    return folder, rest


def _doit_configured() -> bool:
    """Whether doit's configuration here (``doit.cfg``, or ``[tool.doit]`` in ``pyproject.toml``, in the folder the
    command starts in) could set a task's defaults: then doit reads it."""
    try:
        return os.path.exists("doit.cfg") or (
            os.path.isfile("pyproject.toml") and "tool.doit" in open("pyproject.toml", encoding="utf-8").read())
    except (OSError, UnicodeDecodeError):
        return True


def _store(options: dict[str, Any], declaration: dict[str, Any], value: str) -> None:
    kind = declaration["type"]
    if kind is list:
        options[declaration["name"]].append(value)
    elif kind is int:
        try:
            options[declaration["name"]] = int(value)
        except ValueError:
            raise NotDirect from None
    elif kind is str:
        options[declaration["name"]] = value
    else:
        raise NotDirect
