"""Where this machine gets its packages, from its own configuration: never an address written in this repository.

- ``apt_mirror``: the Debian archive apt already uses (a deb822 ``.sources`` stanza, or a ``deb`` line), for
  mmdebstrap to seed base images from. Users behind a mirror or proxy get theirs.
- ``pip_index_hosts``: the hosts of the package indexes pip is configured with (``pip config list``: its
  files and PIP_* variables), whose certificates tell whether the network intercepts TLS.
"""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

LOGGER = logging.getLogger(__name__)

APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def apt_mirror(sources: tuple[Path, Path] = APT_SOURCES) -> str | None:
    """The first Debian archive URI in apt's sources that is not the security archive's; None when there is none."""
    folder, listing = sources
    for path in sorted(folder.glob("*.sources")) if folder.is_dir() else []:
        for stanza in _read(path).split("\n\n"):
            fields = dict(_field(line) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            uris, suites = fields.get("uris", "").split(), fields.get("suites", "")
            if uris and "-security" not in suites and fields.get("enabled", "yes").lower() != "no":
                return uris[0]
    for line in _read(listing).splitlines():
        words = line.split()
        if words[:1] == ["deb"] and "-security" not in line:
            uris = [w for w in words[1:] if "://" in w]
            if uris:
                return uris[0]
    return None


def pip_index_hosts() -> list[str]:
    """The hosts of the HTTPS indexes pip is configured with (index-url, extra-index-url), in order."""
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOGGER.info("cannot ask pip for its configuration (%s)", type(exc).__name__)
        return []
    main: list[str] = []
    extra: list[str] = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        option = key.rpartition(".")[2]
        if option in ("index-url", "extra-index-url"):
            (main if option == "index-url" else extra).extend(value.strip("'\"").split())
    hosts: list[str] = []
    for url in (main or _pip_default_index()) + extra:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname and parts.hostname not in hosts:
            hosts.append(parts.hostname)
    return hosts


def _pip_default_index() -> list[str]:
    """pip's own default index, where no index-url is configured (read from pip, not written here)."""
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        return []
    return [str(PyPI.simple_url)]


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
