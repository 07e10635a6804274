"""The page cap: GitHub renders at most 5000 wiki pages, so the oldest manifest pages fold into one archive
page per image, and every link is pointed at where its page now lives."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from stack_builder.records import manifests
from stack_builder.records.files import write_text
from stack_builder.records.wiki_data import WikiData

LOGGER = logging.getLogger(__name__)

FIXED_PAGES = frozenset({"Home", "Stable_Tag", "Models"})  # always written, so always counted


def fold_oldest(folder: Path, data: WikiData, max_pages: int) -> list[str]:
    """Fold the oldest manifest pages into Archive-<image>.md until the page count fits; return their names."""
    pages = {p.stem for p in folder.glob("*.md")}
    records = sorted((r for r in data.manifest_records() if manifests.record_name(r) in pages),
                     key=lambda r: r["created"])
    folded: list[str] = []
    archived = data.archived()
    count = len(pages) + len(FIXED_PAGES - pages)
    for record in records:
        if count <= max_pages:
            break
        archive, anchor, created = _fold(folder, record)
        count += created - 1
        archived[manifests.record_name(record)] = f"{archive}#{anchor}"
        folded.append(manifests.record_name(record))
    if folded:
        data.set_archived(archived)
        LOGGER.info("wiki: folded %d old manifest pages into archive pages (cap %d)", len(folded), max_pages)
    return folded


def _fold(folder: Path, record: dict[str, Any]) -> tuple[str, str, int]:
    """Move one manifest page to the end of its image's archive page, headings one level down;
    return (archive page, anchor, pages created)."""
    name = manifests.record_name(record)
    archive = f"Archive-{record['image']}"
    archive_path = folder / f"{archive}.md"
    created = 0
    if not archive_path.exists():
        write_text(archive_path, f"# Archived manifests: {record['image']}\n\nOldest first.\n")
        created = 1
    anchor = re.sub(r"[^a-z0-9-]", "-", name.lower())
    body = (folder / f"{name}.md").read_text(encoding="utf-8")
    demoted = re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 1) + " ", body, flags=re.M)
    write_text(archive_path, archive_path.read_text(encoding="utf-8") + f'\n<a id="{anchor}"></a>\n\n{demoted}')
    (folder / f"{name}.md").unlink()
    return archive, anchor, created
