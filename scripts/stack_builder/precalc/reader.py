"""Reading the prediction store, never writing it: what `serve` answers from, on either store.

``open_reader(url)`` opens the store a URL names read-only (DuckDB ``read_only=True``; PostgreSQL: a session
whose transactions are read-only) and gives a ``PredictionReader``: the models stored (image, digest,
declared columns, rows), and the stored rows of one digest for a list of keys. A key matches exactly; a key
no store could hold (a NUL character, a lone surrogate) is simply not found.
"""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

from stack_builder.errors import StackError, shown
from stack_builder.precalc import schema, urls

LOGGER = logging.getLogger(__name__)

POOL_SIZE = 8  # PostgreSQL connections a reader opens at most (one per concurrent request)


@dataclass(frozen=True)
class StoredModel:
    image: str  # the image's name in spec.yml
    digest: str  # the model image's digest the predictions came from
    columns: tuple[tuple[str, str], ...]  # (column name, kind) in declared order; kinds: float, integer, string, boolean
    rows: int  # rows stored for this digest


class PredictionReader(Protocol):
    def models(self) -> list[StoredModel]: ...

    def rows(self, digest: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def raw_rows(self, digest: str, keys: Sequence[str]) -> dict[str, str]:
        """Per key found, its values as the store holds them: one JSON array's text, in the declared
        columns' order (floats with a fraction or exponent, integers exact), to be passed on unparsed."""
        ...


def open_reader(url: str) -> ContextManager[PredictionReader]:
    """The store ``url`` names, open read-only; StackError (the URL's password hidden) when it cannot be."""
    where = urls.parse(url)
    if where.kind is urls.StoreKind.DUCKDB:
        return _duckdb(where)
    return _postgresql(where)


def storable(key: str) -> bool:
    """Whether any store can hold ``key``: UTF-8 text without NUL."""
    if "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _columns(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(n), str(k)) for n, k in json.loads(text))


def _typed(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


@contextlib.contextmanager
def _duckdb(where: urls.StoreUrl) -> Iterator[PredictionReader]:
    import duckdb

    if where.path is None or not where.path.is_file():
        raise StackError(f"no prediction store at {where.shown}: run `stack-builder precalc` first")
    try:
        db = duckdb.connect(str(where.path), read_only=True)
    except duckdb.Error as exc:
        raise StackError(f"the prediction store {where.shown} cannot be opened read-only: "
                         f"{shown(where.hide(str(exc)), 300)}") from None
    try:
        schema.check_readable(schema.duckdb_version(db), where.shown)
        yield DuckReader(db)
    finally:
        db.close()


class DuckReader:
    """A DuckDB store, read-only; each call has a cursor of its own, so threads may share the reader."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.lock = threading.Lock()

    def _cursor(self) -> Any:
        with self.lock:
            return self.db.cursor()

    def models(self) -> list[StoredModel]:
        cursor = self._cursor()
        try:
            found = cursor.execute(
                "SELECT m.image, m.digest, m.columns, (SELECT count(*) FROM predictions p WHERE p.digest = m.digest) "
                "FROM models m ORDER BY m.image, m.digest").fetchall()
        finally:
            cursor.close()
        return [StoredModel(str(i), str(d), _columns(c), int(n)) for i, d, c, n in found]

    def rows(self, digest: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        columns, found = self._select(digest, keys, lambda names: ", ".join(names))
        return {str(row[0]): {n: _typed(k, v) for (n, k), v in zip(columns, row[1:], strict=True)} for row in found}

    def raw_rows(self, digest: str, keys: Sequence[str]) -> dict[str, str]:
        _, found = self._select(digest, keys, lambda names: f"json_array({', '.join(names)})::VARCHAR")
        return {str(key): str(values) for key, values in found}

    def _select(self, digest: str, keys: Sequence[str],
                values: Callable[[list[str]], str]) -> tuple[tuple[tuple[str, str], ...], list[Any]]:
        """The digest's declared columns, and its rows among ``keys``: the key, then what ``values`` makes of
        the quoted column names."""
        wanted = [k for k in dict.fromkeys(keys) if storable(k)]
        cursor = self._cursor()
        try:
            model = cursor.execute("SELECT columns FROM models WHERE digest = ? LIMIT 1", [digest]).fetchone()
            if model is None or not wanted:
                return (), []
            columns = _columns(model[0])
            picked = values([f'"{n}"' for n, _ in columns])
            found = cursor.execute(f"SELECT key, {picked} FROM predictions WHERE digest = ? AND key IN "
                                   "(SELECT unnest(?::VARCHAR[]))", [digest, wanted]).fetchall()
        finally:
            cursor.close()
        return columns, found


@contextlib.contextmanager
def _postgresql(where: urls.StoreUrl) -> Iterator[PredictionReader]:
    reader = PgReader(where)
    try:
        with reader.connection() as conn:
            schema.check_readable(schema.pg_version(conn), where.shown)
        yield reader
    finally:
        reader.close()


class PgReader:
    """A PostgreSQL store through up to ``POOL_SIZE`` read-only sessions, shared by threads."""

    def __init__(self, where: urls.StoreUrl) -> None:
        self.where = where
        self.idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self.opened: list[Any] = []
        self.slots = threading.BoundedSemaphore(POOL_SIZE)
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        with self.slots:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                conn = schema.pg_connect(self.where, read_only=True)
                with self.lock:
                    self.opened.append(conn)
            try:
                yield conn
            finally:
                if conn.closed or conn.broken:  # a store restarted, a connection cut: open a new one next time
                    with self.lock:
                        self.opened.remove(conn)
                    conn.close()
                else:
                    self.idle.put(conn)

    def close(self) -> None:
        with self.lock:
            for conn in self.opened:
                conn.close()
            self.opened.clear()

    def models(self) -> list[StoredModel]:
        with self.connection() as conn:
            found = conn.execute(
                "SELECT m.image, m.digest, m.columns::text, (SELECT count(*) FROM predictions p WHERE p.digest = "
                "m.digest) FROM models m ORDER BY m.image, m.digest").fetchall()
        return [StoredModel(str(i), str(d), _columns(c), int(n)) for i, d, c, n in found]

    def rows(self, digest: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        columns, found = self._select(digest, keys)
        out: dict[str, dict[str, Any]] = {}
        for key, vals in found:
            out[str(key)] = {n: _typed(k, v) for (n, k), v in zip(columns, json.loads(vals), strict=True)}
        return out

    def raw_rows(self, digest: str, keys: Sequence[str]) -> dict[str, str]:
        # the loader wrote each row as a JSON array of typed values (floats as Python writes them, so with a
        # fraction or an exponent), kept as json: its text is passed on as it is
        return {str(key): str(vals) for key, vals in self._select(digest, keys)[1]}

    def _select(self, digest: str, keys: Sequence[str]) -> tuple[tuple[tuple[str, str], ...], list[Any]]:
        wanted = [k for k in dict.fromkeys(keys) if storable(k)]
        with self.connection() as conn:
            model = conn.execute("SELECT columns::text FROM models WHERE digest = %s LIMIT 1", [digest]).fetchone()
            if model is None or not wanted:
                return (), []
            found = conn.execute("SELECT key, vals::text FROM predictions WHERE digest = %s AND key = ANY(%s)",
                                 [digest, wanted]).fetchall()
        return _columns(model[0]), found
