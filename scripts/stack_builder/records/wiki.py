"""The wiki folder: Home.md (stack diagram and builds), Stable_Tag.md, Models.md, manifest pages, archives.

Facts live as JSON under ``wiki/_data/``; pages are rendered from them and never parsed back.
GitHub renders at most 5000 wiki pages, so the oldest manifest pages fold into one archive page
per image, and every link is pointed at where its page now lives.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

from stack_builder.records import catalog, manifests, markdown
from stack_builder.records.files import read_json, write_json, write_text
from stack_builder.errors import StackError
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

MAX_PAGES = 5000
HOME_ROWS = 30  # builds on Home; older ones are on a page per month
LINK_RE = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")


def _read(path: Path, default: Any) -> Any:
    return read_json(path, what="wiki data", default=default)


class Wiki:
    def __init__(self, folder: Path, *, max_pages: int | None = None) -> None:
        self.folder = folder
        self.data = folder / "_data"
        self.records = self.data / "manifests"
        env_cap = os.environ.get("STACK_WIKI_MAX_PAGES")
        self.max_pages = max_pages or (int(env_cap) if env_cap and env_cap.isdigit() else MAX_PAGES)

    # -- facts ------------------------------------------------------------------------------------

    def builds(self) -> list[dict[str, Any]]:
        return list(_read(self.data / "builds.json", []))

    def archived(self) -> dict[str, str]:
        return dict(_read(self.data / "archived.json", {}))

    def stable(self) -> dict[str, Any] | None:
        value = _read(self.data / "stable.json", None)
        return dict(value) if value else None

    def set_stable(self, value: Mapping[str, Any]) -> None:
        """The global stable now, and one more entry in its history."""
        write_json(self.data / "stable.json", dict(value))
        history = list(_read(self.data / "stable_history.json", []))
        history.append({k: value.get(k) for k in ("tag", "time", "by", "skip_gpu_test")})
        write_json(self.data / "stable_history.json", history)

    def models(self) -> dict[str, Any]:
        return dict(_read(self.data / "models.json", {}))

    def update_model(self, name: str, facts: Mapping[str, Any]) -> None:
        """Merge what a build, a promotion or a precalculation learnt about model image ``name``."""
        write_json(self.data / "models.json", catalog.merged(self.models(), name, facts))

    def record_models(self, spec: Spec, report: Mapping[str, Any]) -> None:
        """The model catalog's facts from a build report: each model image it published."""
        for name, result in (report.get("images") or {}).items():
            if name in spec.images and spec.images[name].model is not None and isinstance(result, dict) \
                    and result.get("status") in ("built", "reused") and result.get("digest"):
                self.update_model(name, catalog.facts(str(report.get("tag", "")), result))

    def yanked(self) -> list[dict[str, Any]]:
        return list(_read(self.data / "yanked.json", []))

    # -- writing ----------------------------------------------------------------------------------

    def mark_yanked(self, entry: Mapping[str, Any]) -> str | None:
        """Record a yank (digest, image, reason, time, by, tags removed); mark the digest's manifest page.
        Return that page's name, if the digest has one."""
        yanked = [y for y in self.yanked() if y.get("digest") != entry.get("digest")]
        write_json(self.data / "yanked.json", [*yanked, dict(entry)])
        for path in sorted(self.records.glob("*.json")):
            record = _read(path, None)
            if isinstance(record, dict) and record.get("digest") == entry.get("digest"):
                record["yanked"] = dict(entry)
                previous = manifests.previous_record(record, [self.records])
                manifests.save(record, [self.records])
                name = manifests.record_name(record)
                write_text(self.folder / f"{name}.md", manifests.render(record, previous))
                return name
        return None

    def add_manifest(self, record: dict[str, Any], extra_records: list[Path] | None = None) -> str:
        """Store the record, write its page (with changes since the previous one); return the page name."""
        folders = [self.records, *(extra_records or [])]
        previous = manifests.previous_record(record, folders)
        manifests.save(record, [self.records])
        name = manifests.record_name(record)
        parent = str(record.get("parent") or "")
        parent_page = self.page_for_digest(parent.rpartition("@")[2]) if "@sha256:" in parent else None
        write_text(self.folder / f"{name}.md", manifests.render(
            record, previous, parent_page=self.link(parent_page) if parent_page else None))
        archived = self.archived()
        if archived.pop(name, None) is not None:
            write_json(self.data / "archived.json", archived)
        return name

    def record_build(self, entry: dict[str, Any]) -> None:
        """Add a row to the builds table; the same commit and tag again updates its row, keeping the images
        recorded before (CI records a run's images one at a time)."""
        key = (entry["commit"], entry["tag"])
        builds = self.builds()
        earlier = next((b for b in builds if (b["commit"], b["tag"]) == key), None)
        builds = [b for b in builds if (b["commit"], b["tag"]) != key]
        if earlier is not None:
            images = {i["name"]: i for i in earlier.get("images", [])}
            images.update({i["name"]: i for i in entry.get("images", [])})
            entry = {**earlier, **entry, "images": list(images.values())}
        builds.append(entry)
        builds.sort(key=lambda b: b["time"], reverse=True)
        write_json(self.data / "builds.json", builds)

    def pages_without_a_row(self) -> list[str]:
        """Manifest pages no build or promotion row on Home links to (a page written, its row lost)."""
        listed = {i.get("page") for b in self.builds() for i in b.get("images", [])}
        records = {manifests.record_name(r) for path in self.records.glob("*.json")
                   if isinstance(r := _read(path, None), dict) and "image" in r and "tag" in r}
        return [f"{name}.md: no build row on Home links to it: record the build (`stack-builder manifest` "
                "records one)" for name in sorted(records - listed)]

    def page_for_digest(self, digest: str | None) -> str | None:
        """The manifest page of the image with this digest, if one was recorded."""
        for path in sorted(self.records.glob("*.json")):
            record = _read(path, None)
            if record and digest and record.get("digest") == digest:
                return manifests.record_name(record)
        return None

    def link(self, page: str) -> str:
        return self.archived().get(page, page)

    def render(self, spec: Spec) -> None:
        """Fold old pages if over the cap, then write Home.md, Stable_Tag.md and Models.md."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.enforce_cap()
        write_text(self.folder / "Home.md", self._home(spec))
        self._month_pages()
        write_text(self.folder / "Stable_Tag.md", self._stable_page())
        write_text(self.folder / "Models.md", catalog.render(spec, self.models()))

    def _home(self, spec: Spec) -> str:
        ids = {name: f"n{i}" for i, name in enumerate(spec.images)}
        lines = ["# Image stack", "", f"The {len(spec.images)} images of this stack, how they build on each other, "
                 "and every build and promotion, newest first. Each image name links to what is inside it.", "",
                 "## Stack", "", "```mermaid", "graph TD"]
        for name, image in spec.images.items():
            lines.append(f'  {ids[name]}["{name}"]')
            if image.parent:
                lines.append(f"  {ids[image.parent]} --> {ids[name]}")
        lines += ["```", "", "Current global stable: [Stable_Tag](Stable_Tag)", "",
                  "Model images, their architectures and precalculations: [Models](Models)", "", "## Builds", ""]
        builds = [b for b in self.builds() if not str(b.get("kind", "build")).startswith("promotion")]
        promotions = [b for b in self.builds() if str(b.get("kind", "build")).startswith("promotion")]
        recent, older = builds[:HOME_ROWS], builds[HOME_ROWS:]
        lines += self._builds_table(recent) if recent else ["No builds recorded yet."]
        months = sorted({str(b["time"])[:7] for b in older}, reverse=True)
        if months:
            lines += ["", "Older builds, by month: " + ", ".join(f"[{m}](Builds-{m})" for m in months)]
        lines += ["", "## Promotions", ""]
        if promotions:
            lines += ["| promoted (UTC) | from → to | gates | images |", "| --- | --- | --- | --- |"]
            for row in promotions:
                gates = "GPU test skipped" if "skipped" in str(row.get("kind", "")) else "passed"
                lines.append(f"| {markdown.text(row['time'])} | {markdown.text(row.get('label', ''))} | {gates} | "
                             f"{self._image_links(row)} |")
        else:
            lines.append("No promotions yet.")
        return "\n".join(lines) + "\n"

    def _builds_table(self, rows: list[dict[str, Any]]) -> list[str]:
        lines = ["| built (UTC) | commit | branch | images |", "| --- | --- | --- | --- |"]
        for build in rows:
            commit = markdown.text(build["commit"][:12])
            commit_cell = f"[{commit}]({build['commit_url']})" if build.get("commit_url") else f"`{commit}`"
            lines.append(f"| {markdown.text(build['time'])} | {commit_cell} | {markdown.text(build.get('branch', ''))} "
                         f"| {self._image_links(build)} |")
        return lines

    def _image_links(self, row: dict[str, Any]) -> str:
        return "<br>".join(
            (f"[{i['name']}:{i['tag']}]({self.link(i['page'])})" if i.get("page") else f"{i['name']}:{i['tag']}")
            + (f" (reused from {markdown.code(i['reused_from'])})" if i.get("reused_from") else "")
            for i in row.get("images", []))

    def _month_pages(self) -> None:
        """Builds older than the newest HOME_ROWS, one page per month (as jupyter/docker-stacks keeps them)."""
        builds = [b for b in self.builds() if not str(b.get("kind", "build")).startswith("promotion")]
        by_month: dict[str, list[dict[str, Any]]] = {}
        for build in builds[HOME_ROWS:]:
            by_month.setdefault(str(build["time"])[:7], []).append(build)
        for month, rows in by_month.items():
            write_text(self.folder / f"Builds-{month}.md", "\n".join(
                [f"# Builds of {month}", "", "Newest first. [Home](Home)", "", *self._builds_table(rows)]) + "\n")

    def _stable_page(self) -> str:
        stable = self.stable()
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
            page = self.page_for_digest(digest)
            link = f"[{markdown.text(page)}]({self.link(page)})" if page else markdown.code(digest)
            pull = markdown.code(f"docker pull {repositories[name]}@{digest}") if name in repositories else "—"
            lines.append(f"| {markdown.text(name)} | {link} | {pull} |")
        yanked = {str(y.get("digest")): y for y in self.yanked()}
        for name, digest in sorted(stable.get("images", {}).items()):
            if digest in yanked:
                lines += ["", f"> **Yanked:** {markdown.text(name)}@{markdown.code(digest)}: "
                          f"{markdown.text(yanked[digest].get('reason', ''))}. Roll back: "
                          f"{markdown.code('stack-builder tag --rollback --global-stable')}"]
        history = list(_read(self.data / "stable_history.json", []))
        lines += ["", "## History", "", "Every move of `stable`, newest first.", "",
                  "| set (UTC) | to | by | GPU gate |", "| --- | --- | --- | --- |"]
        for move in reversed(history):
            lines.append(f"| {markdown.text(move.get('time', ''))} | {markdown.text(move.get('tag', ''))} | "
                         f"{markdown.text(move.get('by', ''))} | {'skipped' if move.get('skip_gpu_test') else 'passed'} |")
        if yanked:
            lines += ["", "## Yanked digests", "", "Promotion, rollback and reuse refuse these.", "",
                      "| yanked (UTC) | image | digest | reason | by |", "| --- | --- | --- | --- | --- |"]
            for item in sorted(yanked.values(), key=lambda y: str(y.get("time", "")), reverse=True):
                lines.append(f"| {markdown.text(item.get('time', ''))} | {markdown.text(item.get('image', ''))} | "
                             f"{markdown.code(item.get('digest', ''), in_table=True)} | "
                             f"{markdown.text(item.get('reason', ''))} | {markdown.text(item.get('by', ''))} |")
        return "\n".join(lines) + "\n"

    # -- the page cap -----------------------------------------------------------------------------

    def pages(self) -> list[Path]:
        return sorted(self.folder.glob("*.md"))

    def enforce_cap(self) -> list[str]:
        """Fold the oldest manifest pages into Archive-<image>.md until the page count fits."""
        pages = {p.stem for p in self.pages()}
        records = []
        for path in self.records.glob("*.json"):
            record = _read(path, None)
            if record and manifests.record_name(record) in pages:
                records.append(record)
        records.sort(key=lambda r: r["created"])
        folded: list[str] = []
        archived = self.archived()
        fixed = {"Home", "Stable_Tag", "Models"}
        count = len(pages) + len(fixed) - len(fixed & pages)  # Home, Stable_Tag and Models always exist
        for record in records:
            if count <= self.max_pages:
                break
            name = manifests.record_name(record)
            archive = f"Archive-{record['image']}"
            archive_path = self.folder / f"{archive}.md"
            if not archive_path.exists():
                write_text(archive_path, f"# Archived manifests: {record['image']}\n\nOldest first.\n")
                count += 1
            anchor = re.sub(r"[^a-z0-9-]", "-", name.lower())
            body = (self.folder / f"{name}.md").read_text(encoding="utf-8")
            demoted = re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 1) + " ", body, flags=re.M)
            write_text(archive_path, archive_path.read_text(encoding="utf-8") + f'\n<a id="{anchor}"></a>\n\n{demoted}')
            (self.folder / f"{name}.md").unlink()
            archived[name] = f"{archive}#{anchor}"
            folded.append(name)
            count -= 1
        if folded:
            write_json(self.data / "archived.json", archived)
            LOGGER.info("wiki: folded %d old manifest pages into archive pages (cap %d)", len(folded), self.max_pages)
        return folded


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
