"""Package sources come from the machine's own configuration (apt's sources, pip's configuration), and no
mirror's or index's address is written in this repository."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stack_builder.engine import package_sources
from stacks import REPO

DEB822 = """\
Types: deb
URIs: http://security.mirror.test/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://off.mirror.test/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://archive.mirror.test/debian http://second.mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_the_apt_mirror_is_the_first_enabled_archive_that_is_not_the_security_one(tmp_path: Path) -> None:
    folder, listing = tmp_path / "sources.list.d", tmp_path / "sources.list"
    folder.mkdir()
    (folder / "debian.sources").write_text(DEB822)
    assert package_sources.apt_mirror((folder, listing)) == "http://archive.mirror.test/debian"
    (folder / "debian.sources").unlink()
    listing.write_text("# a comment\ndeb http://security.mirror.test/debian-security bookworm-security main\n"
                       "deb [arch=amd64] http://listed.mirror.test/debian bookworm main\n")
    assert package_sources.apt_mirror((folder, listing)) == "http://listed.mirror.test/debian"
    listing.write_text("")
    assert package_sources.apt_mirror((folder, listing)) is None


def test_the_index_hosts_are_pips_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.mirror.test/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://plain.mirror.test/simple https://extra.mirror.test/simple")
    assert package_sources.pip_index_hosts()[:2] == ["index.mirror.test", "extra.mirror.test"]


def test_no_mirror_or_index_address_is_written_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    addresses = ("deb.debian.org", "security.debian.org", "pypi.org", "pythonhosted.org", "registry.npmjs.org")
    found = [(path, a) for path in tracked if not path.startswith("tests/") and (REPO / path).is_file()
             for a in addresses if a in (REPO / path).read_text(errors="replace")]
    assert found == []
