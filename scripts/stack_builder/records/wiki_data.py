"""The wiki's facts: JSON under ``wiki/_data/``, read and written here only. Pages are rendered from these
and never parsed back."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from stack_builder.records import catalog
from stack_builder.records.files import read_json, write_json
from stack_builder.records.runs import Run

LOGGER = logging.getLogger(__name__)


def read(path: Path, default: Any) -> Any:
    return read_json(path, what="wiki data", default=default)


class WikiData:
    """The builds table, the page archive map, the global stable and its history, the model catalog, yanks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # wiki/_data
        self.records = folder / "manifests"  # every manifest record the wiki has a page for

    def builds(self) -> list[Run]:
        """Every build, promotion and rollback row, newest first."""
        return [Run.from_json(row) for row in read(self.folder / "builds.json", [])]

    def record_build(self, entry: Mapping[str, Any]) -> None:
        """Add a row to the builds table; the same commit and tag again updates its row, keeping the images
        recorded before (CI records a run's images one at a time)."""
        added = Run.from_json(entry)
        key = (added.commit, added.tag)
        builds = self.builds()
        earlier = next((b for b in builds if (b.commit, b.tag) == key), None)
        builds = [b for b in builds if (b.commit, b.tag) != key]
        if earlier is not None:
            images = {i["name"]: i for i in earlier.images}
            images.update({i["name"]: i for i in added.images})
            added = Run.from_json({**earlier.to_json(), **added.to_json(), "images": list(images.values())})
        builds.append(added)
        builds.sort(key=lambda b: b.time, reverse=True)
        write_json(self.folder / "builds.json", [b.to_json() for b in builds])

    def archived(self) -> dict[str, str]:
        """Manifest pages folded into an archive page: page name → its place there (``Archive-x#anchor``)."""
        return dict(read(self.folder / "archived.json", {}))

    def set_archived(self, archived: Mapping[str, str]) -> None:
        write_json(self.folder / "archived.json", dict(archived))

    def stable(self) -> dict[str, Any] | None:
        value = read(self.folder / "stable.json", None)
        return dict(value) if value else None

    def stable_history(self) -> list[dict[str, Any]]:
        """Every move of the global ``stable``, oldest first."""
        return list(read(self.folder / "stable_history.json", []))

    def set_stable(self, value: Mapping[str, Any]) -> None:
        """The global stable now, and one more entry in its history."""
        write_json(self.folder / "stable.json", dict(value))
        history = self.stable_history()
        history.append({k: value.get(k) for k in ("tag", "time", "by", "skip_gpu_test")})
        write_json(self.folder / "stable_history.json", history)

    def models(self) -> dict[str, Any]:
        return dict(read(self.folder / "models.json", {}))

    def update_model(self, name: str, facts: Mapping[str, Any]) -> None:
        """Merge what a build, a promotion or a precalculation learnt about model image ``name``."""
        write_json(self.folder / "models.json", catalog.merged(self.models(), name, facts))

    def yanked(self) -> list[dict[str, Any]]:
        return list(read(self.folder / "yanked.json", []))

    def add_yanked(self, entry: Mapping[str, Any]) -> None:
        """Record a yank; a digest yanked again replaces its entry."""
        yanked = [y for y in self.yanked() if y.get("digest") != entry.get("digest")]
        write_json(self.folder / "yanked.json", [*yanked, dict(entry)])

    def manifest_records(self) -> list[dict[str, Any]]:
        """Every stored manifest record that reads as one, in file-name order."""
        found = []
        for path in sorted(self.records.glob("*.json")):
            record = read(path, None)
            if isinstance(record, dict) and "image" in record and "tag" in record:
                found.append(record)
        return found
