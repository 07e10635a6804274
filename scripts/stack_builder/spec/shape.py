"""The first check of a spec: its shape against ``spec.schema.json``, each violation said for a person.

A spec that passed is remembered (``memo``: a folder of the user's cache), by the digest of the schema, of this
module and of the spec's data as JSON: the same document passes again without loading jsonschema, a third of a
registry-side command's start-up. Only a pass is remembered; data that JSON cannot say exactly (a date, a key that
is not text, NaN) is always checked, and a memo folder that anyone but this user could write to is not believed.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import stat
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack_builder.errors import shown
from stack_builder.spec.problems import Problems

if TYPE_CHECKING:
    import jsonschema

LOGGER = logging.getLogger(__name__)
MEMO_ENTRIES = 512  # specs remembered; past this, the older half is forgotten

_TYPE_NAMES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "empty"}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("spec.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


@lru_cache(maxsize=1)
def _validator() -> "jsonschema.Draft202012Validator":
    """The schema with each ``{"$ref": "#/$defs/..."}`` replaced by what it names: the same checks and errors,
    without a reference lookup per image (a third of the time on a stack of thousands). The definitions
    do not refer to themselves, so this ends."""
    definitions = schema().get("$defs", {})

    def inlined(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inlined(definitions[ref.removeprefix("#/$defs/")])
            return {key: inlined(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inlined(value) for value in node]
        return node

    import jsonschema  # (only when a spec is checked: a remembered one never loads it)

    return jsonschema.Draft202012Validator(inlined(schema()))


def spec_version() -> int:
    """The newest spec format this builder reads: the schema's ``x-spec-version`` (its ``version`` key's maximum)."""
    return int(schema()["x-spec-version"])


def check_version(data: dict[str, Any], problems: Problems) -> bool:
    """Whether ``data`` is in a format this builder reads; if not, one problem that says what to do. A spec
    without ``version`` is version 1, the first release's format."""
    found = data.get("version", 1)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        problems.add(("version",), f"{shown(repr(found))} is not a spec version: write a whole number from 1 "
                                   f"(this builder reads up to {spec_version()}), or leave the key out")
        return False
    if found > spec_version():
        from stack_builder.version import version

        problems.add(("version",), f"this spec is written for spec format {found}, newer than this stack-builder "
                                   f"({version()}) reads (up to {spec_version()}): upgrade stack-builder "
                                   "(pip install -U stack-builder, or the workflows' @vX.Y.Z)")
        return False
    return True


def json_type(value: Any) -> str:
    """What a YAML value is, in the words a message uses."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else type(value).__name__


def check_schema(data: dict[str, Any], problems: Problems, *, memo: Path | None = None) -> None:
    """Add a problem for every way ``data`` breaks the schema, in key-path order (nothing, at once, for data
    that ``memo`` remembers passing)."""
    key = _memo_key(data) if memo is not None else None
    if memo is not None and key is not None and (memo / key).is_file() and _own(memo):
        return
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        _explain(error, problems)
    if memo is not None and key is not None and not errors:
        _remember(memo, key)


def _memo_key(data: dict[str, Any]) -> str | None:
    """The digest that names ``data``'s pass, or None when JSON cannot say the data exactly."""
    try:
        text = json.dumps(data, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    if json.loads(text) != data:  # a key that is not text (1: and "1": read alike), a tuple
        return None
    try:
        digest = hashlib.sha256(resources.files(__package__).joinpath("spec.schema.json").read_bytes())
        digest.update(Path(__file__).read_bytes())
    except OSError:
        return None
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _own(memo: Path) -> bool:
    """Whether only this user can have written the memo: its folder is this user's, and nobody else may write to
    it (a shared folder is never believed)."""
    try:
        folder = memo.stat()
    except OSError:
        return False
    return folder.st_uid == os.getuid() and not folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _remember(memo: Path, key: str) -> None:
    """Note the pass; a cache that cannot be written (read-only, full) only costs the next check its time."""
    try:
        memo.mkdir(mode=0o700, parents=True, exist_ok=True)
        (memo / key).touch()
        entries = sorted(memo.iterdir(), key=lambda p: p.stat().st_mtime)
        for old in entries[:len(entries) - MEMO_ENTRIES // 2] if len(entries) > MEMO_ENTRIES else []:
            old.unlink(missing_ok=True)
    except OSError as exc:
        LOGGER.debug("spec checks are not remembered in %s: %s", memo, exc)


def _explain(error: "jsonschema.ValidationError", problems: Problems) -> None:
    where = tuple(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                tip = f" (did you mean '{hint[0]}'?)" if hint else (
                    f"; allowed keys: {', '.join(allowed)}" if allowed else "")
                problems.add((*where, key), f"unknown key '{shown(key)}'{tip}")
    elif kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in wanted)
        problems.add(where, f"must be {names}, not {json_type(error.instance)} ({shown(error.instance)})")
    elif kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        for key in missing:
            problems.add(where, f"missing required key '{key}'")
    elif kind == "propertyNames":
        problems.add((*where, str(error.instance)),
                     f"'{shown(error.instance)}' is not an allowed name here (pattern {error.schema.get('pattern')})")
    elif kind == "oneOf" and where and where[-1] == "root":
        problems.add(where, "must be an image name or a list of image names")
    elif kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        problems.add(where, f"'{shown(error.instance)}' is not one of: {choices}")
    elif kind == "pattern":
        problems.add(where, f"'{shown(error.instance)}' does not match the pattern {error.validator_value}")
    elif kind in {"minItems", "minProperties", "minLength"}:
        problems.add(where, "must not be empty")
    else:
        problems.add(where, shown(error.message, 240))
