"""The command reference, made from the tasks ``stack-builder`` runs and the parameters they declare.

Each ``task_*`` creator of ``stack_builder.apps.doit_tasks`` is one command: its docstring says what it does
(and, after ``Example:``, how it is called), its ``params`` say every option with its type, default and help.
A parameter without a name, an option name, a type or a help text stops the build.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from stack_builder.docs.mdtext import DocsError, anchor, code, prose, table

TYPES: Mapping[Any, str] = {bool: "flag", str: "text", int: "integer", list: "text, repeatable", float: "number"}
REQUIRED_FIELDS = ("name", "long", "type", "default", "help")


@dataclass(frozen=True)
class Command:
    """One task as the command line shows it."""
    name: str
    doc: str
    params: tuple[Mapping[str, Any], ...]

    @property
    def summary(self) -> str:
        return self.doc.partition("Example:")[0].strip()

    @property
    def example(self) -> str:
        return self.doc.partition("Example:")[2].strip()


def commands_of(module: ModuleType) -> list[Command]:
    """Every ``task_*`` creator of ``module``, called as doit calls it, in the order of their names."""
    found = []
    for attribute in sorted(vars(module)):
        creator = getattr(module, attribute)
        if not attribute.startswith("task_") or not callable(creator):
            continue
        declared = _declaration(attribute, creator)
        found.append(Command(attribute.removeprefix("task_"), str(declared.get("doc") or creator.__doc__ or ""),
                             tuple(declared.get("params", ()))))
    if not found:
        raise DocsError(f"{module.__name__} declares no task_* creator")
    return found


def _declaration(attribute: str, creator: Callable[[], Any]) -> Mapping[str, Any]:
    declared = creator()
    if not isinstance(declared, Mapping):
        raise DocsError(f"{attribute}() does not return a task's dictionary")
    return declared


def _option(param: Mapping[str, Any]) -> str:
    names = [f"--{param['long']}"] + ([f"-{param['short']}"] if param.get("short") else [])
    return ", ".join(code(n) for n in names)


def _default(param: Mapping[str, Any]) -> str:
    """The default as the user sees it; where the help text says what it is, the help says it (it may depend on
    the machine, e.g. the number of cores)."""
    value = param["default"]
    if "default" in str(param["help"]).lower():
        return "see the description"
    if value is False or value is None or value == "" or value == []:
        return ""
    return code(str(value).lower() if isinstance(value, bool) else str(value))


def check_param(command: str, param: Mapping[str, Any]) -> None:
    missing = [field for field in REQUIRED_FIELDS if field not in param or
               (field in ("name", "long", "help") and not str(param[field]).strip())]
    if missing:
        raise DocsError(f"task {command}: parameter {param.get('name', '?')!r} has no {', '.join(missing)}")
    if param["type"] not in TYPES:
        raise DocsError(f"task {command}: parameter {param['name']!r} has a type the reference cannot name: "
                        f"{param['type']!r}")


def command_markdown(command: Command) -> str:
    if not command.summary:
        raise DocsError(f"task {command.name} has no docstring saying what it does")
    lines = [f"## `{command.name}` {{#{anchor(command.name)}}}", "", prose(command.summary), ""]
    if command.example:
        lines += ["```bash", f"stack-builder {command.example}", "```", ""]
    if command.params:
        rows = []
        for param in command.params:
            check_param(command.name, param)
            rows.append([_option(param), TYPES[param["type"]], _default(param), prose(str(param["help"]))])
        lines.append(table(["Option", "Type", "Default", "Description"], rows))
    else:
        lines.append("No options.")
    return "\n".join(lines)


def command_reference(commands: Sequence[Command], global_options: Sequence[Mapping[str, Any]] = ()) -> str:
    """The reference page's body: a summary table, the options every command takes, then each command."""
    summary = table(["Command", "What it does"], [[f"[`{c.name}`](#{anchor(c.name)})", prose(c.summary)]
                                                  for c in commands])
    parts = [summary]
    if global_options:
        rows = []
        for option in global_options:
            check_param("(global)", option)
            rows.append([_option(option), TYPES[option["type"]], _default(option), prose(str(option["help"]))])
        parts.append("## Options of every command {#options-of-every-command}\n\nGiven before the command, "
                     "e.g. `stack-builder -d ../other-stack tree`.\n\n"
                     + table(["Option", "Type", "Default", "Description"], rows))
    parts += [command_markdown(c) for c in commands]
    return "\n\n".join(parts) + "\n"
