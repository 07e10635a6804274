"""`precalc --load`: Parquet files (a fan-out's shard jobs' exports), each checked as a shard's output is
checked, all of one image and one digest, then stored together in one transaction, or not at all."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError, shown
from stack_builder.precalc import validate, values
from stack_builder.precalc.stores import PredictionStore
from stack_builder.spec.references import DIGEST_RE
from stack_builder.spec.stack_spec import ModelSpec

LOGGER = logging.getLogger(__name__)

FIXED = ["image", "digest", "key"]


@dataclass
class Loading:
    """What the files read so far hold: one digest (the one given, or the first file's), one row per key."""
    image: str
    model: ModelSpec
    digest: str = ""  # the digest being loaded: every row must name it
    parts: list[validate.Rows] = field(default_factory=list)
    seen: dict[str, Path] = field(default_factory=dict)  # key: the file it came from

    def add(self, path: Path, header: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Check one file's rows as a shard's output is checked; StackError names the file and the value."""
        declared = [name for name, _ in self.model.columns]
        expected = FIXED + declared
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        if missing or extra:
            raise StackError(f"--load {path}: " + "; ".join(
                ([f"no column {', '.join(missing)}"] if missing else [])
                + ([f"column(s) {shown(', '.join(extra))} that {self.image} does not declare"] if extra else []))
                + f": a file of `precalc --export` for {self.image} has exactly {', '.join(expected)}; "
                "nothing was loaded")
        at = [header.index(c) for c in expected]
        keys: list[str] = []
        texts: list[list[str]] = []
        for number, row in enumerate(rows, start=1):
            image, digest, key = (row[i] for i in at[:3])
            self._check_row(path, number, image, digest, key)
            keys.append(key)
            texts.append([self._text(path, key, name, row[i]) for name, i in zip(declared, at[3:], strict=True)])
        try:
            part = validate.check(Table(declared, texts), self.model, keys)
        except validate.InvalidOutput as exc:
            raise StackError(f"--load {path}: {exc}; nothing was loaded") from None
        self.parts.append(part)

    def _check_row(self, path: Path, number: int, image: object, digest: object, key: object) -> None:
        where = f"--load {path}, row {number}"
        if image != self.image:
            raise StackError(f"{where}: image {shown(image, 80)!r}, not {self.image}: load each image's files "
                             "with its own --image; nothing was loaded")
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise StackError(f"{where}: digest {shown(digest, 80)!r} is not a sha256 digest; nothing was loaded")
        if not self.digest:
            self.digest = digest
        elif digest != self.digest:
            raise StackError(f"{where}: digest {digest}, not {self.digest} (the one being loaded): load one "
                             "digest at a time; nothing was loaded")
        if not isinstance(key, str) or not key:
            raise StackError(f"{where}: an empty key; every row needs one; nothing was loaded")
        if key in self.seen:
            raise StackError(f"{where}: key {shown(key, 60)!r} is also in {self.seen[key]}: a key may come from "
                             "one file only; nothing was loaded")
        self.seen[key] = path

    def _text(self, path: Path, key: str, column: str, value: object) -> str:
        text = values.text_of(value)
        if text is None:
            raise StackError(f"--load {path}: column {column}, key {shown(key, 60)}: a value of type "
                             f"{type(value).__name__}, which no model column holds; nothing was loaded")
        return text


def load(store: PredictionStore, files: Sequence[Path], image: str, model: ModelSpec, *, digest: str = "") -> int:
    """Check every file, then store all their rows in one transaction; return the rows added."""
    loading = Loading(image, model, digest)
    for path in files:
        header, rows = store.read_parquet(path)
        loading.add(path, header, rows)
    if not loading.seen:
        LOGGER.info("--load: %d file(s), no rows", len(files))
        return 0
    why = validate.all_null(validate.total([p.filled for p in loading.parts]), model, what="the files loaded")
    if why is not None:
        raise StackError(f"--load: {why}; nothing was loaded")
    before = store.count()
    try:
        store.put(image, loading.digest, loading.parts, model.columns)
    except StackError as exc:
        raise StackError(f"--load: {exc}; nothing was loaded") from None
    LOGGER.info("--load: %d file(s) of %s@%s stored", len(files), image, loading.digest)
    return store.count() - before
