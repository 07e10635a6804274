"""The MkDocs hook that fills the generated reference pages (``hooks:`` in mkdocs.yml).

Each ``<!-- generated: NAME -->`` marker of a page is replaced by what ``generated.GENERATORS[NAME]`` makes of the
code as it is now. A marker no generator knows, a reference that cannot be made, or a generator whose marker
no page holds stops the build with a message saying which.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

from stack_builder.docs.mdtext import DocsError
from stack_builder.docs.generated import GENERATORS, expand

_used: set[str] = set()


def on_pre_build(*, config: Any) -> None:
    _used.clear()


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    root = Path(str(config.config_file_path)).parent
    try:
        return expand(markdown, root, _used)
    except DocsError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from error


def on_post_build(*, config: Any) -> None:
    missing = sorted(set(GENERATORS) - _used)
    if missing:
        raise PluginError(f"no page holds the generated section(s) {', '.join(missing)}: "
                          "add <!-- generated: NAME --> where each belongs")
