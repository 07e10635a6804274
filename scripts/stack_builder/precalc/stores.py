"""The prediction store a URL names, opened for writing: the DuckDB file (``store.Store``) or a PostgreSQL
server (``pgstore.PgStore``), behind one interface with the same semantics."""
from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Sequence

from stack_builder.precalc import urls
from stack_builder.precalc.validate import Rows

LOGGER = logging.getLogger(__name__)


class PredictionStore(Protocol):
    @property
    def shown(self) -> str: ...  # the store's URL, without credentials

    def __enter__(self) -> "PredictionStore": ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def ensure(self, columns: Sequence[tuple[str, str]], image: str = "") -> None: ...

    def stored_shards(self, digest: str, run: str) -> set[int]: ...

    def put_shard(self, *, image: str, digest: str, run: str, shard: int, rows: Rows,
                  columns: Sequence[tuple[str, str]]) -> int: ...

    def put(self, image: str, digest: str, parts: Sequence[Rows], columns: Sequence[tuple[str, str]], *,
            record: list[Any] | None = None) -> None: ...

    def run_filled(self, digest: str, run: str, columns: Sequence[tuple[str, str]]) -> list[dict[str, int]]: ...

    def run_rows(self, digest: str, run: str) -> int: ...

    def drop_run(self, digest: str, run: str, keys: Sequence[str]) -> None: ...

    def count(self, digest: str | None = None) -> int: ...

    def coverage(self, image: str) -> dict[str, int]: ...

    def lookup(self, image: str, keys: Sequence[str],
               columns: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]: ...

    def export(self, image: str, digest: str, target: Path, columns: Sequence[tuple[str, str]]) -> Path: ...

    def read_parquet(self, path: Path) -> tuple[list[str], list[tuple[Any, ...]]]: ...


def open_store(url: str) -> PredictionStore:
    """The store ``url`` names, created or migrated as needed; StackError (credentials hidden) if it cannot be."""
    where = urls.parse(url)
    if where.kind is urls.StoreKind.DUCKDB and where.path is not None:
        from stack_builder.precalc.store import Store

        return Store(where.path)
    from stack_builder.precalc.pgstore import PgStore

    return PgStore(where)
