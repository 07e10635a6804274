"""The first check of a spec: its shape against ``spec.schema.json``, each violation said for a person."""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from stack_builder.errors import shown
from stack_builder.spec.problems import Problems

_TYPE_NAMES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "empty"}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("spec.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
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


def check_schema(data: dict[str, Any], problems: Problems) -> None:
    """Add a problem for every way ``data`` breaks the schema, in key-path order."""
    for error in sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        _explain(error, problems)


def _explain(error: jsonschema.ValidationError, problems: Problems) -> None:
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
