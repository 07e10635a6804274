"""The wiki folder: Home.md (stack diagram and builds), Stable_Tag.md, Models.md, manifest pages, archives.

Facts live as JSON under ``wiki/_data/`` (``wiki_data``); pages are rendered from them and never parsed
back: Home and the month pages (``wiki_home``), Stable_Tag (``wiki_stable``), manifest pages
(``wiki_manifests``), and archive pages once there are more than GitHub renders (``wiki_archive``).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

from stack_builder.kinds import Status
from stack_builder.errors import StackError
from stack_builder.records import catalog, markdown
from stack_builder.records.files import write_text
from stack_builder.records.runs import Run
from stack_builder.records.wiki_archive import fold_oldest
from stack_builder.records.wiki_data import WikiData
from stack_builder.records.wiki_home import HOME_ROWS, HomePages
from stack_builder.records.wiki_manifests import ManifestPages
from stack_builder.records.wiki_stable import stable_page
from stack_builder.settings import CiSettings
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

__all__ = ["HOME_ROWS", "MAX_PAGES", "Wiki", "broken_links", "rerender"]

MAX_PAGES = 5000
LINK_RE = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")


class Wiki:
    """One wiki folder: its facts, its pages, and the cap on how many pages it has."""

    def __init__(self, folder: Path, *, max_pages: int | None = None) -> None:
        self.folder = folder
        self.data = folder / "_data"
        self.records = self.data / "manifests"
        cap = CiSettings.from_env().wiki_max_pages  # STACK_WIKI_MAX_PAGES
        self.max_pages = max_pages or (cap if cap is not None else MAX_PAGES)
        self.facts = WikiData(self.data)
        self.manifests = ManifestPages(folder, self.facts)

    # -- facts ------------------------------------------------------------------------------------

    def builds(self) -> list[Run]:
        return self.facts.builds()

    def archived(self) -> dict[str, str]:
        return self.facts.archived()

    def stable(self) -> dict[str, Any] | None:
        return self.facts.stable()

    def set_stable(self, value: Mapping[str, Any]) -> None:
        """The global stable now, and one more entry in its history."""
        self.facts.set_stable(value)

    def models(self) -> dict[str, Any]:
        return self.facts.models()

    def update_model(self, name: str, facts: Mapping[str, Any]) -> None:
        """Merge what a build, a promotion or a precalculation learnt about model image ``name``."""
        self.facts.update_model(name, facts)

    def record_models(self, spec: Spec, report: Mapping[str, Any]) -> None:
        """The model catalog's facts from a build report: each model image it published."""
        for name, result in (report.get("images") or {}).items():
            if name in spec.images and spec.images[name].model is not None and isinstance(result, dict) \
                    and Status.of(result.get("status")).published and result.get("digest"):
                self.update_model(name, catalog.facts(str(report.get("tag", "")), result))

    def yanked(self) -> list[dict[str, Any]]:
        return self.facts.yanked()

    # -- writing ----------------------------------------------------------------------------------

    def mark_yanked(self, entry: Mapping[str, Any]) -> str | None:
        """Record a yank (digest, image, reason, time, by, tags removed); mark the digest's manifest page.
        Return that page's name, if the digest has one."""
        return self.manifests.mark_yanked(entry)

    def add_manifest(self, record: dict[str, Any], extra_records: list[Path] | None = None) -> str:
        """Store the record, write its page (with changes since the previous one); return the page name."""
        return self.manifests.add(record, extra_records)

    def record_build(self, entry: Mapping[str, Any]) -> None:
        """Add a row to the builds table (``Run.from_json`` reads ``entry``: its ``kind`` is a ``RunKind``
        value); the same commit and tag again updates its row, keeping the images recorded before."""
        self.facts.record_build(entry)

    def pages_without_a_row(self) -> list[str]:
        """Manifest pages no build or promotion row on Home links to (a page written, its row lost)."""
        return self.manifests.without_a_row()

    def page_for_digest(self, digest: str | None) -> str | None:
        """The manifest page of the image with this digest, if one was recorded."""
        return self.manifests.page_for_digest(digest)

    def link(self, page: str) -> str:
        return self.manifests.link(page)

    def render(self, spec: Spec) -> None:
        """Fold old pages if over the cap, then write Home.md, Stable_Tag.md and Models.md."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.enforce_cap()
        HomePages(self.folder, self.facts, self.manifests).write(spec)
        write_text(self.folder / "Stable_Tag.md", stable_page(self.facts, self.manifests))
        write_text(self.folder / "Models.md", catalog.render(spec, self.models()))

    # -- the page cap -----------------------------------------------------------------------------

    def pages(self) -> list[Path]:
        return sorted(self.folder.glob("*.md"))

    def enforce_cap(self) -> list[str]:
        """Fold the oldest manifest pages into Archive-<image>.md until the page count fits."""
        return fold_oldest(self.folder, self.facts, self.max_pages)


def broken_links(folder: Path) -> list[str]:
    """Relative links in the wiki's pages whose page (or anchor) does not exist."""
    broken = []
    pages = {p.stem: p for p in folder.glob("*.md")}
    for path in pages.values():
        text = markdown.outside_code(path.read_text(encoding="utf-8"))  # a link inside code is no link
        for target in LINK_RE.findall(text):
            if "://" in target or target.startswith(("mailto:", "#")):
                continue
            page, _, anchor = target.partition("#")
            page = page.removesuffix(".md")
            if page not in pages:
                broken.append(f"{path.name}: link to missing page {target}")
            elif anchor and f'id="{anchor}"' not in pages[page].read_text(encoding="utf-8"):
                broken.append(f"{path.name}: link to missing anchor {target}")
    return broken


def rerender(spec: Spec, folder: Path) -> int:
    """Render Home and Stable_Tag again, fold pages over the cap, check every link and that every manifest
    page has its build row on Home; return the page count."""
    pages = Wiki(folder)
    pages.render(spec)
    broken = broken_links(pages.folder) + pages.pages_without_a_row()
    if broken:
        raise StackError("the wiki is not consistent:\n  " + "\n  ".join(broken))
    return len(pages.pages())
