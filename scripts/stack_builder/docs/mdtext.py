"""Markdown for the generated pages: text escaped so that it stays text, code spans no value can close, tables."""
from __future__ import annotations

import re
from typing import Sequence


class DocsError(Exception):
    """A reference page cannot be made: what the code declares is missing, or something the generator cannot say."""


# Everything Markdown (with the tables and attr_list extensions) or HTML could read as syntax in running text.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "&#42;", "_": "&#95;", "[": "&#91;", "]": "&#93;",
             "`": "&#96;", "|": "&#124;", "\\": "&#92;", "{": "&#123;", "}": "&#125;", "#": "&#35;"}
_SYNTAX = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)


def _escaped(value: str) -> str:
    return _SYNTAX.sub(lambda m: _ENTITIES[m.group(0)], value)


def text(value: str) -> str:
    """``value`` shown as plain text on one line: no character of it becomes markup."""
    return _escaped(" ".join(value.split()))


def prose(value: str) -> str:
    """``value`` as written prose: its code spans (`like this`) stay code, everything else is text."""
    flat = " ".join(value.split())
    out: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(flat):
        out.append(_escaped(flat[last:match.start()]))
        out.append(code(match.group(2).strip()))
        last = match.end()
    out.append(_escaped(flat[last:]))
    return "".join(out)


def code(value: str) -> str:
    """``value`` as one inline code span that no backtick inside it can close (a pipe inside stays in its cell)."""
    flat = " ".join(value.split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of cells already made safe (``text``, ``prose``, ``code``); an empty cell shows a dash."""
    if any(len(row) != len(headers) for row in rows):
        raise DocsError(f"a table row does not have {len(headers)} cells")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("\n", " ") or "—" for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(path: str) -> str:
    """A heading id made of a key path: ``images.<name>.model`` -> ``images-name-model``."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    if not slug:
        raise DocsError(f"no anchor can be made of {path!r}")
    return slug
