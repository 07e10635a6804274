"""CHANGELOG.md keeps to Keep a Changelog 1.1.0: an Unreleased section, then one section per release, newest
first, each `## [X.Y.Z] - YYYY-MM-DD` with only the standard kinds of change, and a link for every version;
the version in pyproject.toml has its section."""
from __future__ import annotations

import re
import tomllib
from datetime import date

from stacks import REPO

KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
RELEASE = re.compile(r"## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})")


def sections() -> list[str]:
    return [line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]


def test_unreleased_comes_first_then_releases_newest_first() -> None:
    found = sections()
    assert found[0] == "## [Unreleased]"
    releases = [RELEASE.fullmatch(line) for line in found[1:]]
    assert all(releases), [line for line, m in zip(found[1:], releases) if not m]
    versions = [tuple(int(p) for p in m.group(1).split(".")) for m in releases if m]
    dates = [date.fromisoformat(m.group(2)) for m in releases if m]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert dates == sorted(dates, reverse=True)


def test_the_projects_version_has_a_section_and_every_version_a_link() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    text = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{version}] - " in text
    for name in ["Unreleased", *(m.group(1) for m in RELEASE.finditer(text))]:
        assert re.search(rf"^\[{re.escape(name)}\]: https://", text, re.MULTILINE), name


def test_changes_are_grouped_by_the_standard_kinds_only() -> None:
    kinds = [line[4:] for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("### ")]
    assert kinds and set(kinds) <= KINDS, set(kinds) - KINDS
