"""How every record of ours is written and read: UTC timestamps, JSON or lines written atomically, and
JSON read with a size limit and errors that name the file without quoting it at length."""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stack_builder.errors import StackError, shown
from stack_builder.registry.credentials import redact_all

MAX_JSON_BYTES = 64 * 1024 * 1024  # a record, plan or payload larger than this is not ours


def read_json(path: Path, *, what: str, default: Any = None, missing_ok: bool = True) -> Any:
    """The JSON in ``path``; ``default`` when it does not exist (if ``missing_ok``). Anything else that is
    wrong (too large, not JSON, unreadable) raises ``StackError`` naming the file and what it is."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise StackError(f"{path} ({what}) is {size:,} bytes, more than {MAX_JSON_BYTES:,}: not reading it")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return default
        raise StackError(f"{path} ({what}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(f"{path} ({what}) cannot be read: {shown(str(exc))}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise StackError(f"{path} ({what}) is nested too deeply to read") from None
    except ValueError as exc:
        raise StackError(f"{path} ({what}) is not valid JSON: {shown(str(exc))}; delete or repair it") from None


def utc_now() -> str:
    """The time now in UTC, as every record and page of ours writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_clock() -> str:
    """The time of day now in UTC (HH:MM:SS), as a log line starts."""
    return datetime.now(timezone.utc).strftime("%H:%M:%S")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one. Strings are
    redacted before they are encoded (an escaped secret would not match afterwards)."""
    _atomic_write(path, json.dumps(_redacted(data), indent=2, sort_keys=False) + "\n")


def _redacted(data: Any) -> Any:
    if isinstance(data, str):
        return redact_all(data)
    if isinstance(data, dict):
        return {_redacted(k): _redacted(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redacted(v) for v in data]
    return data


def write_lines(path: Path, lines: list[str]) -> None:
    _atomic_write(path, "".join(f"{line}\n" for line in lines))


def write_text(path: Path, text: str) -> None:
    """Write a page or any other text of ours atomically, secrets redacted."""
    _atomic_write(path, text)


def _atomic_write(path: Path, text: str) -> None:
    """Every file of ours goes through here: secrets redacted (whatever their case), readable by all (0644),
    replaced atomically."""
    text = redact_all(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: a CI step running as another user must read artifacts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
