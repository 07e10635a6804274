"""The reference library a model is precalculated over: read, checked, sampled and cut into shards (pure)."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError, shown

LOGGER = logging.getLogger(__name__)

MAX_LIBRARY_BYTES = 2 * 1024 ** 3
MAX_SHARDS = 256  # GitHub's limit of jobs in one matrix: a fan-out has one job per shard
SHARD_SIZE = 10_000  # rows per shard when the number of shards follows the library


@dataclass(frozen=True)
class Library:
    path: Path
    key: str  # the column that names each row
    header: list[str]
    rows: list[list[str]]
    sha256: str  # of the file's bytes: a resumed run must read the same library

    def keys(self, indices: list[int]) -> list[str]:
        at = self.header.index(self.key)
        return [self.rows[i][at] for i in indices]

    def model_input(self, indices: list[int], columns: list[str]) -> Table:
        """The rows at ``indices``, with the columns the model reads (its example input's), in that order."""
        at = [self.header.index(c) for c in columns]
        return Table(list(columns), [[self.rows[i][j] for j in at] for i in indices])


def load(path: Path, key: str, input_columns: list[str]) -> Library:
    """Read and check the library: it exists, has ``key`` (default: its first column) with unique, non-empty
    values, and every column of the model's example input."""
    if not path.is_file():
        raise StackError(f"--library {shown(str(path), 200)}: no such file; give a CSV with a header row")
    if path.stat().st_size > MAX_LIBRARY_BYTES:
        raise StackError(f"--library {path}: larger than {MAX_LIBRARY_BYTES // 1024 ** 3} GB; split it")
    data = path.read_bytes()
    try:
        reader = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StackError(f"--library {path}: not UTF-8 CSV ({shown(str(exc))})") from None
    if not reader or not reader[0]:
        raise StackError(f"--library {path}: empty; it needs a header row and at least one row")
    header, rows = reader[0], [r for r in reader[1:] if r]
    if not rows:
        raise StackError(f"--library {path}: a header but no rows")
    key = key or header[0]
    if key not in header:
        raise StackError(f"--key {shown(key)}: no such column in {path.name}; its columns are {', '.join(header)}")
    missing = [c for c in input_columns if c not in header]
    if missing:
        raise StackError(f"--library {path.name} lacks the column(s) {', '.join(missing)} that the model's "
                         f"example input has ({', '.join(input_columns)}): it cannot be given to this model")
    short = [n + 2 for n, r in enumerate(rows) if len(r) != len(header)]
    if short:
        raise StackError(f"--library {path.name}: line(s) {', '.join(map(str, short[:5]))} have "
                         f"a different number of fields than the header ({len(header)})")
    at = header.index(key)
    nul = next((n + 2 for n, r in enumerate(rows) if "\x00" in r[at]), 0)
    if nul:
        raise StackError(f"--library {path.name}: line {nul}: the key ({key}) has a NUL character, which no "
                         "prediction store can hold; remove it")
    counts = Counter(r[at] for r in rows)
    empty = counts.pop("", 0)
    if empty:
        raise StackError(f"--library {path.name}: {empty} row(s) have an empty key ({key}); every row needs one")
    twice = [k for k, n in counts.items() if n > 1]
    if twice:
        raise StackError(f"--library {path.name}: {len(twice)} key(s) of column {key} appear more than once, e.g. "
                         f"{', '.join(shown(k, 40) for k in twice[:5])}: keys must be unique")
    return Library(path, key, header, rows, hashlib.sha256(data).hexdigest())


def sample(library: Library, k: int) -> list[int]:
    """Row indices: all of them, or a reproducible random sample of ``k`` (the same for the same library)."""
    total = len(library.rows)
    if k < 0:
        raise StackError(f"--sample {k}: give a number of rows, at least 1 (0: the whole library)")
    if k == 0 or k >= total:
        return list(range(total))
    return sorted(random.Random(library.sha256).sample(range(total), k))


def shards(indices: list[int], count: int) -> list[list[int]]:
    """``indices`` cut into ``count`` contiguous shards of near-equal size (none empty)."""
    if count < 1:
        raise StackError(f"--shards {count}: at least 1")
    count = min(count, len(indices))
    size, extra = divmod(len(indices), count)
    out, start = [], 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        out.append(indices[start:end])
        start = end
    return out


def shard_count(rows: int, shards: int, shard_size: int) -> int:
    """How many shards: ``shards`` when given, else one per ``shard_size`` rows (at most ``MAX_SHARDS``)."""
    if shards < 0:
        raise StackError(f"--shards {shards}: give a number of shards, at least 1 (0: from --shard-size)")
    if shard_size < 1:
        raise StackError(f"--shard-size {shard_size}: give a number of rows per shard, at least 1")
    if shards:
        return shards
    return max(1, min(MAX_SHARDS, -(-rows // shard_size)))
