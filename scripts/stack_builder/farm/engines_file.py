"""The ``--engines`` file: which Docker engines build which platforms, on this machine's network (it stays
outside the repository: it names hosts and certificate folders).

    engines:
      - name: local
        platforms: [linux/amd64]
        endpoint: unix:///var/run/docker.sock
      - name: arm-box
        platforms: [linux/arm64]
        endpoint: tcp://10.0.0.5:2376
        tls: /etc/stack-builder/arm-box      # ca.pem, cert.pem, key.pem
      - {name: arm-box-2, platforms: [linux/arm64], endpoint: ssh://builder@arm-box-2}

An endpoint is a unix://, tcp:// or ssh:// URL, or the name of a docker context. Several engines of one
platform are a pool.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack_builder.engine.endpoints import SCHEMES, TLS_FILES, Endpoint, from_context
from stack_builder.errors import StackError, shown

LOGGER = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$")
KEYS = ("name", "platforms", "endpoint", "tls")


@dataclass(frozen=True)
class Engine:
    endpoint: Endpoint
    platforms: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.endpoint.name


@dataclass(frozen=True)
class Engines:
    engines: tuple[Engine, ...]

    def pool(self, platform: str) -> list[Engine]:
        """The engines that build ``platform``, in the file's order."""
        return [engine for engine in self.engines if platform in engine.platforms]

    def platforms(self) -> set[str]:
        return {p for engine in self.engines for p in engine.platforms}


def load(path: Path) -> Engines:
    """The engines ``path`` declares, checked; StackError naming the file and the key otherwise."""
    import yaml  # light start-up: only a run with --engines reads YAML here

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StackError(f"--engines {path}: cannot be read ({exc.strerror or exc}); give the file that maps "
                         "platforms to Docker engines") from None
    except yaml.YAMLError as exc:
        raise StackError(f"--engines {path}: not YAML ({shown(str(exc), 200)})") from None
    return parse(data, str(path), base=path.parent)


def parse(data: Any, where: str, *, base: Path) -> Engines:
    if not isinstance(data, dict) or set(data) != {"engines"} or not isinstance(data["engines"], list) \
            or not data["engines"]:
        raise StackError(f"{where}: the file holds one key, `engines:`, a list of engines (name, platforms, "
                         "endpoint, and tls for a tcp:// endpoint)")
    engines = [_engine(item, f"{where}: engines[{number}]", base) for number, item in enumerate(data["engines"])]
    names = [engine.name for engine in engines]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise StackError(f"{where}: engine names are unique; {', '.join(twice)} is used more than once")
    return Engines(tuple(engines))


def _engine(item: Any, where: str, base: Path) -> Engine:
    if not isinstance(item, dict):
        raise StackError(f"{where}: an engine is a mapping with {', '.join(KEYS)}")
    unknown = sorted(str(k) for k in item if k not in KEYS)
    if unknown:
        raise StackError(f"{where}: unknown key(s) {', '.join(shown(u, 40) for u in unknown)}; an engine has "
                         f"{', '.join(KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise StackError(f"{where}.name: {shown(repr(name), 80)} is not a name (letters, digits, . _ -, at most "
                         "63 characters): the report names the engine by it")
    platforms = item.get("platforms")
    if not isinstance(platforms, list) or not platforms or not all(
            isinstance(p, str) and PLATFORM_RE.fullmatch(p) for p in platforms):
        raise StackError(f"{where}.platforms: a list of platforms such as [linux/amd64], not "
                         f"{shown(repr(platforms), 80)}")
    endpoint = item.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise StackError(f"{where}.endpoint: a unix://, tcp:// or ssh:// URL, or a docker context's name")
    return Engine(_endpoint(name, endpoint.strip(), item.get("tls"), where, base), tuple(platforms))


def _endpoint(name: str, url: str, tls: Any, where: str, base: Path) -> Endpoint:
    if "://" not in url:
        if tls is not None:
            raise StackError(f"{where}.tls: a docker context keeps its own TLS files; leave tls out")
        return from_context(name, url)
    if not url.startswith(SCHEMES):
        raise StackError(f"{where}.endpoint: {shown(url, 80)} is not a unix://, tcp:// or ssh:// URL")
    if tls is None:
        if url.startswith("tcp://"):
            LOGGER.warning("%s: engine %r is reached over tcp:// without TLS: anyone on that network can use it",
                           where, name)
        return Endpoint(name, url)
    if not url.startswith("tcp://"):
        raise StackError(f"{where}.tls: TLS client files are for a tcp:// endpoint, not {shown(url, 80)}")
    if not isinstance(tls, str) or not tls:
        raise StackError(f"{where}.tls: the folder holding {', '.join(TLS_FILES)}")
    folder = (base / tls).resolve()
    missing = [f for f in TLS_FILES if not (folder / f).is_file()]
    if missing:
        raise StackError(f"{where}.tls: {folder} lacks {', '.join(missing)} (the CA, the client certificate and "
                         "its key, as DOCKER_CERT_PATH holds them)")
    return Endpoint(name, url, folder)
