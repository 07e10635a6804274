"""The problems found in a spec, each one line naming the file, the line and the key path."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from stack_builder.errors import shown
from stack_builder.spec import yamlsource


class Problems:
    """Every problem of one spec, collected so that the user sees them all at once."""

    def __init__(self, display: str, located: yamlsource.Located) -> None:
        self.display = display
        self.located = located
        self.messages: list[str] = []

    def add(self, path: Iterable[str | int], message: str, *, line: int | None = None) -> None:
        key_path = tuple(path)
        line = line or self.located.line_of(key_path)
        where = f"{self.display}:{line}" if line else self.display
        dotted = shown(dotted_path(key_path))
        self.messages.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")


def dotted_path(path: tuple[str | int, ...]) -> str:
    """A key path as the user would write it: images.base.info_cmds[1]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def display_path(path: Path, stack_dir: Path) -> str:
    """``path`` relative to the stack folder when it is under it (lexically), else as it is."""
    try:
        return str(path.relative_to(stack_dir))
    except ValueError:
        return str(path)
