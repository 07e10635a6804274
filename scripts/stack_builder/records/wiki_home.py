"""Home.md (the stack diagram, the newest builds, every promotion) and the Builds-<month> pages of older builds."""
from __future__ import annotations

import logging
from pathlib import Path

from stack_builder.records import markdown
from stack_builder.records.files import write_text
from stack_builder.records.runs import Run
from stack_builder.records.wiki_data import WikiData
from stack_builder.records.wiki_manifests import ManifestPages
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

HOME_ROWS = 30  # builds on Home; older ones are on a page per month


class HomePages:
    """Renders Home and the month pages from the builds table."""

    def __init__(self, folder: Path, data: WikiData, manifests: ManifestPages) -> None:
        self.folder = folder
        self.data = data
        self.manifests = manifests

    def write(self, spec: Spec) -> None:
        runs = self.data.builds()
        builds = [r for r in runs if not r.kind.moves_tags]
        write_text(self.folder / "Home.md", self.home(spec, builds, [r for r in runs if r.kind.moves_tags]))
        self._month_pages(builds[HOME_ROWS:])

    def home(self, spec: Spec, builds: list[Run], promotions: list[Run]) -> str:
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
        recent, older = builds[:HOME_ROWS], builds[HOME_ROWS:]
        lines += self._builds_table(recent) if recent else ["No builds recorded yet."]
        months = sorted({b.time[:7] for b in older}, reverse=True)
        if months:
            lines += ["", "Older builds, by month: " + ", ".join(f"[{m}](Builds-{m})" for m in months)]
        lines += ["", "## Promotions", ""]
        if promotions:
            lines += ["| promoted (UTC) | from → to | gates | images |", "| --- | --- | --- | --- |"]
            lines += [f"| {markdown.text(row.time)} | {markdown.text(row.label)} | {row.gates} | "
                      f"{self._image_links(row)} |" for row in promotions]
        else:
            lines.append("No promotions yet.")
        return "\n".join(lines) + "\n"

    def _builds_table(self, rows: list[Run]) -> list[str]:
        lines = ["| built (UTC) | commit | branch | images |", "| --- | --- | --- | --- |"]
        for build in rows:
            commit = markdown.text(build.commit[:12])
            commit_cell = f"[{commit}]({build.commit_url})" if build.commit_url else f"`{commit}`"
            lines.append(f"| {markdown.text(build.time)} | {commit_cell} | {markdown.text(build.branch)} "
                         f"| {self._image_links(build)} |")
        return lines

    def _image_links(self, row: Run) -> str:
        return "<br>".join(
            (f"[{i['name']}:{i['tag']}]({self.manifests.link(i['page'])})" if i.get("page")
             else f"{i['name']}:{i['tag']}")
            + (f" (reused from {markdown.code(i['reused_from'])})" if i.get("reused_from") else "")
            for i in row.images)

    def _month_pages(self, older: list[Run]) -> None:
        """Builds older than the newest HOME_ROWS, one page per month (as jupyter/docker-stacks keeps them)."""
        by_month: dict[str, list[Run]] = {}
        for build in older:
            by_month.setdefault(build.time[:7], []).append(build)
        for month, rows in by_month.items():
            write_text(self.folder / f"Builds-{month}.md", "\n".join(
                [f"# Builds of {month}", "", "Newest first. [Home](Home)", "", *self._builds_table(rows)]) + "\n")
