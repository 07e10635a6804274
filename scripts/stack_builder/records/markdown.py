"""Values from images, specs and git made safe for the Markdown (GFM) pages of the wiki.

``text`` is for a value shown as text (a table cell, a heading): HTML is escaped and every Markdown
character that could start a link, an image, emphasis, code or a table cell is backslash-escaped,
so a package named ``x|<img src=x onerror=alert(1)>[x](nowhere)`` renders as exactly those
characters. ``code`` is for a value shown as code: a span no backtick in the value can close, with
the pipe escaped (GFM splits table cells on it even inside code). ``outside_code`` is the text of a
page with code spans and fences removed, for the link checker.
"""
from __future__ import annotations

import html
import re

_SPECIAL = re.compile(r"([\\`*_\[\]()!|~])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[`~]*[ \t]*$|\Z)", re.M | re.S)
_AUTOLINK = re.compile(r"(?i)(?:\bwww\.|\b[a-z][a-z0-9+.-]*:(?=//))")
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def text(value: object) -> str:
    """``value`` as Markdown text on one line: no HTML, no link (nor www./scheme:// autolink), no emphasis, no
    cell break. (A bare e-mail address still becomes a mailto: link: GFM finds it after escapes are read.)"""
    flat = " ".join(str(value).split())
    escaped = _SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))
    # GFM turns www.x and scheme://x into links by themselves: an escaped dot or colon stops that.
    return _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], escaped)


def code(value: object, *, in_table: bool = True) -> str:
    """``value`` as an inline code span on one line; in a table cell its pipes are escaped (GFM splits cells
    on them even inside code), elsewhere they are left as they are (an escape would show)."""
    flat = " ".join(str(value).split())
    if not flat:
        return "—"
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    return f"{ticks} {flat.replace('|', chr(92) + '|') if in_table else flat} {ticks}"


def outside_code(page: str) -> str:
    """``page`` without its fenced code blocks and code spans."""
    return _SPAN.sub("", _FENCE.sub("", page).replace("\\`", ""))  # an escaped backtick opens no span
