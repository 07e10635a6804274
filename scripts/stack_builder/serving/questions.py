"""What a lookup asks, read strictly from the request body, and the errors a client can cause.

No web framework here: the API turns an ``ApiError`` into its status and a JSON body
``{"error": KIND, "message": TEXT}``.
"""
from __future__ import annotations

import enum
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from stack_builder.errors import shown
from stack_builder.precalc.values import MAX_FIELD

LOGGER = logging.getLogger(__name__)

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")  # Docker's tag grammar
FIELDS = ("keys", "digest", "tag", "values")
class Shape(enum.Enum):
    """How a found row's values are written: ``{column: value}``, or ``[value, ...]`` in the columns' order
    (the store's own text passed on, the faster)."""

    OBJECT = "object"
    LIST = "list"


SHAPES = tuple(shape.value for shape in Shape)
SHOWN = 80  # characters of a client's value quoted back in an error


class ApiError(Exception):
    """A request the API refuses: ``status`` (4xx, or 503 when the store or registry does not answer), a short
    ``kind`` a client can branch on, and a message written for the person who sent it."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def body(self) -> dict[str, str]:
        return {"error": self.kind, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_keys: int = 10_000  # keys in one request
    max_key_chars: int = MAX_FIELD  # characters in one key: as long as a library's value may be
    max_body: int = 8 * 1024 * 1024  # bytes of one request body

    def __post_init__(self) -> None:
        for name in ("max_keys", "max_key_chars", "max_body"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class Question:
    keys: tuple[str, ...]  # as asked, in order (a key asked twice is answered twice)
    digest: str  # the digest asked for, or "" when a tag names it
    tag: str  # the tag whose digest is asked for, or "" when the digest is given
    shape: Shape = Shape.OBJECT  # how a found row's values are written


def parse_question(body: bytes, limits: Limits, *, default_tag: str) -> Question:
    """The request body ``{"keys": [...], "digest": "sha256:..."}`` or ``{"keys": [...], "tag": "..."}``
    (neither: ``default_tag``), and optionally ``"values": "list"``, checked; ``ApiError`` (400) says what is
    wrong."""
    data = _json_object(body)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(400, "bad request", f"unknown field(s) {', '.join(shown(u, SHOWN) for u in unknown[:5])}; "
                       f"a request has {', '.join(FIELDS)}")
    keys = _keys(data.get("keys"), limits)
    digest, tag = data.get("digest", ""), data.get("tag", "")
    if not isinstance(digest, str) or not isinstance(tag, str):
        raise ApiError(400, "bad request", "\"digest\" and \"tag\" are strings")
    if digest and tag:
        raise ApiError(400, "bad request", "give \"digest\" or \"tag\", not both: one answer is for one digest")
    if digest and not DIGEST_RE.fullmatch(digest):
        raise ApiError(400, "bad digest", f"\"digest\" {shown(digest, SHOWN)!r} is not a digest; give "
                       "sha256:<64 lowercase hex digits>")
    shape = data.get("values", Shape.OBJECT.value)
    if shape not in SHAPES:
        raise ApiError(400, "bad request", f"\"values\" is \"object\" (the default) or \"list\", not "
                       f"{shown(json.dumps(shape), SHOWN)}")
    tag = tag or ("" if digest else default_tag)
    if not digest and not TAG_RE.fullmatch(tag):
        raise ApiError(400, "bad tag", f"\"tag\" {shown(tag, SHOWN)!r} is not a tag (letters, digits, . _ -, at "
                       "most 128 characters, not starting with . or -)")
    return Question(keys, digest, tag, Shape(shape))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "bad JSON", f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad JSON", f"the body is not JSON: {exc.msg} at line {exc.lineno} column "
                       f"{exc.colno}") from None
    except RecursionError:
        raise ApiError(400, "bad JSON", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad request", "the body is a JSON object: {\"keys\": [\"...\"], \"digest\": "
                       "\"sha256:...\"} or {\"keys\": [...], \"tag\": \"...\"}")
    return data


def _keys(keys: Any, limits: Limits) -> tuple[str, ...]:
    if not isinstance(keys, list) or not keys:
        raise ApiError(400, "bad keys", "\"keys\" is a non-empty list of strings")
    if len(keys) > limits.max_keys:
        raise ApiError(400, "too many keys", f"{len(keys)} keys; at most {limits.max_keys} in one request: "
                       "split them")
    for number, key in enumerate(keys):
        if not isinstance(key, str):
            raise ApiError(400, "bad keys", f"key {number} is {type(key).__name__} {shown(key, SHOWN)}; every key "
                           "is a string")
        if not key:
            raise ApiError(400, "bad keys", f"key {number} is empty; a library has no empty keys")
        if len(key) > limits.max_key_chars:
            raise ApiError(400, "key too long", f"key {number} has {len(key)} characters; at most "
                           f"{limits.max_key_chars}")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON can escape it, no text can hold it
            raise ApiError(400, "bad keys", f"key {number} is not Unicode text (a lone surrogate, "
                           f"{shown(key.encode('utf-8', 'backslashreplace').decode(), SHOWN)})") from None
    return tuple(keys)
