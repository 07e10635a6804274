""".dockerignore read and matched as BuildKit does, so the input key hashes exactly the files a build receives.

BuildKit's rules (moby's pattern matcher, which this follows; read, not copied):
- a line is trimmed; empty lines and lines starting with ``#`` are skipped; ``!`` starts an exception;
- a pattern is cleaned like a path (``./a//b/`` is ``a/b``) and a leading ``/`` is dropped;
- ``*`` is any run of characters but ``/``, ``?`` one character but ``/``, ``**`` any number of folders
  (``**/`` may be none), ``[...]`` a class as in Go's regexp: ``[^a]`` negates, ``[!a]`` is ``!`` or ``a``;
  ``\\`` escapes the next character; matching is case-sensitive;
- a path is left out when the last pattern matching it, or one of its parent folders, is not an exception.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stack_builder.errors import StepFailed

_REGEX_ONLY = set(".+()|{}$")  # special in a regular expression, plain in a pattern (as BuildKit escapes)


@dataclass(frozen=True)
class Pattern:
    text: str  # as cleaned
    exception: bool
    regex: re.Pattern[str]


def read_patterns(path: Path) -> list[str]:
    """The patterns of an ignore file, as BuildKit reads them (comments and blank lines left out)."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape").removeprefix("\ufeff")
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        body = line[1:].strip() if exception else line
        patterns.append(("!" if exception else "") + _clean(body))
    return patterns


def _clean(body: str) -> str:
    """A pattern cleaned like a path, without a leading ``/`` (the context's top is ``/`` in a pattern)."""
    if not body:
        return body
    body = posixpath.normpath(body)
    return body.lstrip("/") or "/" if len(body) > 1 else body


def compile_patterns(patterns: Sequence[str], *, source: str = ".dockerignore") -> list[Pattern]:
    compiled = []
    for raw in patterns:
        exception = raw.startswith("!")
        body = raw[1:] if exception else raw
        if exception and not body:
            raise StepFailed(f"{source}: the pattern '!' excludes nothing: remove it or name what to keep")
        body = _clean(body) if body else "."
        try:
            compiled.append(Pattern(body, exception, re.compile(_regex(body))))
        except (re.error, ValueError) as exc:
            raise StepFailed(f"{source}: pattern '{raw}' is not valid ({exc}): fix it as BuildKit would "
                             "refuse it too") from None
    return compiled


def _regex(pattern: str) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(?:.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(r"\\")
        elif ch in "[]":
            out.append(ch)
        elif ch in _REGEX_ONLY:
            out.append("\\" + ch)
        else:
            out.append(ch)  # (as BuildKit: a class's ranges and ^ keep their meaning)
        i += 1
    return "".join(out)  # (an unclosed class is refused by re.compile, as Go's filepath.Match refuses it)


def excluded(path: str, patterns: Sequence[Pattern]) -> bool:
    """Whether BuildKit leaves ``path`` (relative, with ``/``) out of the build context."""
    parents = path.split("/")[:-1]
    prefixes = ["/".join(parents[:k]) for k in range(1, len(parents) + 1)]
    matched = False
    for pattern in patterns:
        if pattern.exception != matched:  # an inclusion that matched already, or an exception with nothing to undo
            continue
        hit = pattern.regex.fullmatch(path) is not None or any(pattern.regex.fullmatch(p) for p in prefixes)
        if hit:
            matched = not pattern.exception
    return matched
