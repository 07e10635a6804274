"""The wiki's manifest pages: one per record, linked from Home, its parent's page and the stable page."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from stack_builder.records import manifests
from stack_builder.records.files import write_text
from stack_builder.records.wiki_data import WikiData

LOGGER = logging.getLogger(__name__)


class ManifestPages:
    """Writes manifest pages and finds them again (by digest, or where the page cap moved them)."""

    def __init__(self, folder: Path, data: WikiData) -> None:
        self.folder = folder
        self.data = data

    def add(self, record: dict[str, Any], extra_records: list[Path] | None = None) -> str:
        """Store the record, write its page (with changes since the previous one); return the page name."""
        folders = [self.data.records, *(extra_records or [])]
        previous = manifests.previous_record(record, folders)
        manifests.save(record, [self.data.records])
        name = manifests.record_name(record)
        parent = str(record.get("parent") or "")
        parent_page = self.page_for_digest(parent.rpartition("@")[2]) if "@sha256:" in parent else None
        write_text(self.folder / f"{name}.md", manifests.render(
            record, previous, parent_page=self.link(parent_page) if parent_page else None))
        archived = self.data.archived()
        if archived.pop(name, None) is not None:  # written again: the page is back at its own name
            self.data.set_archived(archived)
        return name

    def mark_yanked(self, entry: Mapping[str, Any]) -> str | None:
        """Record a yank (digest, image, reason, time, by, tags removed); mark the digest's manifest page.
        Return that page's name, if the digest has one."""
        self.data.add_yanked(entry)
        for record in self.data.manifest_records():
            if record.get("digest") == entry.get("digest"):
                record["yanked"] = dict(entry)
                previous = manifests.previous_record(record, [self.data.records])
                manifests.save(record, [self.data.records])
                name = manifests.record_name(record)
                write_text(self.folder / f"{name}.md", manifests.render(record, previous))
                return name
        return None

    def page_for_digest(self, digest: str | None) -> str | None:
        """The manifest page of the image with this digest, if one was recorded."""
        if not digest:
            return None
        return next((manifests.record_name(r) for r in self.data.manifest_records() if r.get("digest") == digest),
                    None)

    def link(self, page: str) -> str:
        """Where a page's link points: its own name, or its place in an archive page."""
        return self.data.archived().get(page, page)

    def without_a_row(self) -> list[str]:
        """Manifest pages no build or promotion row on Home links to (a page written, its row lost)."""
        listed = {i.get("page") for b in self.data.builds() for i in b.images}
        records = {manifests.record_name(r) for r in self.data.manifest_records()}
        return [f"{name}.md: no build row on Home links to it: record the build (`stack-builder manifest` "
                "records one)" for name in sorted(records - listed)]
