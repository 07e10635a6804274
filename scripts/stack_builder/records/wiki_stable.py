"""Stable_Tag.md: what the global ``stable`` points at, every move of it, and the yanked digests."""
from __future__ import annotations

import logging
from typing import Any

from stack_builder.records import markdown
from stack_builder.records.wiki_data import WikiData
from stack_builder.records.wiki_manifests import ManifestPages

LOGGER = logging.getLogger(__name__)


def stable_page(data: WikiData, pages: ManifestPages) -> str:
    """The page's Markdown, from the wiki's facts."""
    stable = data.stable()
    lines = ["# Global stable tag", ""]
    if not stable:
        return "\n".join(lines + ["No global `stable` tag yet: `stack-builder tag --tag YYYY.Q --global-stable` sets it.",
                                  ""])
    skipped = " The GPU test gate was **skipped** (`--skip-gpu-test`)." if stable.get("skip_gpu_test") else ""
    lines += [f"`stable` points at the images of **{markdown.text(stable['tag'])}**, set "
              f"{markdown.text(stable['time'])} by {markdown.text(stable.get('by', 'unknown'))}.{skipped}", "",
              "| image | page | pull |", "| --- | --- | --- |"]
    repositories = stable.get("repositories", {})
    for name, digest in sorted(stable.get("images", {}).items()):
        page = pages.page_for_digest(digest)
        link = f"[{markdown.text(page)}]({pages.link(page)})" if page else markdown.code(digest)
        pull = markdown.code(f"docker pull {repositories[name]}@{digest}") if name in repositories else "—"
        lines.append(f"| {markdown.text(name)} | {link} | {pull} |")
    yanked = {str(y.get("digest")): y for y in data.yanked()}
    for name, digest in sorted(stable.get("images", {}).items()):
        if digest in yanked:
            lines += ["", f"> **Yanked:** {markdown.text(name)}@{markdown.code(digest)}: "
                      f"{markdown.text(yanked[digest].get('reason', ''))}. Roll back: "
                      f"{markdown.code('stack-builder tag --rollback --global-stable')}"]
    lines += _history(data.stable_history()) + _yanked(yanked)
    return "\n".join(lines) + "\n"


def _history(history: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## History", "", "Every move of `stable`, newest first.", "",
             "| set (UTC) | to | by | GPU gate |", "| --- | --- | --- | --- |"]
    for move in reversed(history):
        lines.append(f"| {markdown.text(move.get('time', ''))} | {markdown.text(move.get('tag', ''))} | "
                     f"{markdown.text(move.get('by', ''))} | {'skipped' if move.get('skip_gpu_test') else 'passed'} |")
    return lines


def _yanked(yanked: dict[str, dict[str, Any]]) -> list[str]:
    if not yanked:
        return []
    lines = ["", "## Yanked digests", "", "Promotion, rollback and reuse refuse these.", "",
             "| yanked (UTC) | image | digest | reason | by |", "| --- | --- | --- | --- | --- |"]
    for item in sorted(yanked.values(), key=lambda y: str(y.get("time", "")), reverse=True):
        lines.append(f"| {markdown.text(item.get('time', ''))} | {markdown.text(item.get('image', ''))} | "
                     f"{markdown.code(item.get('digest', ''), in_table=True)} | "
                     f"{markdown.text(item.get('reason', ''))} | {markdown.text(item.get('by', ''))} |")
    return lines
