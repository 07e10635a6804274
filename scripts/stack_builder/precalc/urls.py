"""Where the prediction store lives, named by a URL: ``duckdb:///abs/path.duckdb`` (an embedded file, the
default) or ``postgresql://user:password@host:port/db`` (a server many runners share).

A password in the URL is a secret: it is registered for redaction as soon as the URL is read, and the URL
is only ever shown as ``shown`` (``postgresql://user:***@host:port/db``), never as given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from stack_builder import secrets
from stack_builder.errors import StackError, shown

LOGGER = logging.getLogger(__name__)

SCHEMES = ("duckdb", "postgresql", "postgres")
HIDDEN = "***"


class StoreKind(str, Enum):
    DUCKDB = "duckdb"
    POSTGRESQL = "postgresql"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StoreUrl:
    kind: StoreKind
    path: Path | None  # the DuckDB file
    dsn: str  # what PostgreSQL is given (with the password); "" for DuckDB
    shown: str  # what messages, logs, reports and the wiki show: no password
    secret: str = field(default="", repr=False)  # the password, to hide from a driver's error text

    def __repr__(self) -> str:  # never the password, even in a traceback
        return f"StoreUrl({self.shown!r})"

    def hide(self, text: str) -> str:
        """``text`` (a driver's error) without this URL's password, however short, or any other secret."""
        return secrets.redact_all(text.replace(self.secret, HIDDEN) if self.secret else text)


def default_url(artifacts: Path) -> str:
    return f"duckdb://{(artifacts / 'precalc.duckdb').resolve()}"


def parse(url: str, *, what: str = "--store") -> StoreUrl:
    """``url`` read and checked; StackError names what is wrong (with any password hidden)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise StackError(f"{what} {shown(redacted(url), 200)}: not a store URL; give duckdb:///ABS/PATH.duckdb or "
                         "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    if scheme == "duckdb":
        rest = url[len("duckdb:"):]
        path = rest[2:] if rest.startswith("//") else rest
        if not path or path.endswith("/"):
            raise StackError(f"{what} {shown(url, 200)}: no file named; give duckdb:///ABS/PATH.duckdb")
        return StoreUrl(StoreKind.DUCKDB, Path(unquote(path)), "", f"duckdb://{unquote(path)}" if path.startswith("/")
                        else f"duckdb:{unquote(path)}")
    return _postgresql(url, what)


def _postgresql(url: str, what: str) -> StoreUrl:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StackError(f"{what} {shown(redacted(url), 200)}: not a PostgreSQL URL ({exc}); give "
                         "postgresql://USER:PASSWORD@HOST:PORT/DATABASE") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = unquote(parts.password or "") or next((v for k, v in query if k == "password"), "")
    if password:
        secrets.remember(password)
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise StackError(f"{what} {shown(redacted(url), 200)}: name one database, as postgresql://HOST:PORT/DATABASE")
    host = parts.hostname or ""
    user = f"{parts.username}:{HIDDEN}@" if parts.username and parts.password is not None else \
        (f"{parts.username}@" if parts.username else "")
    netloc = f"{user}{host}{f':{port}' if port else ''}"
    shown_query = urlencode([(k, HIDDEN if k == "password" else v) for k, v in query])
    display = urlunsplit(("postgresql", netloc, "/" + database, shown_query, ""))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    return StoreUrl(StoreKind.POSTGRESQL, None, dsn, display, password)


def redacted(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` parameter hidden: for text that may
    quote a URL not yet parsed (an error about a bad one)."""
    head, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, at, host = rest.partition("@")
        if ":" in credentials:
            rest = credentials.split(":", 1)[0] + ":" + HIDDEN + at + host
    if "password=" in rest:
        before, _, after = rest.partition("password=")
        rest = before + "password=" + HIDDEN + (("&" + after.split("&", 1)[1]) if "&" in after else "")
    return head + sep + rest
