"""One output value, read strictly from its text: what the prediction store keeps, exactly (pure).

A missing value has one spelling: an empty field (in Parquet, NULL). A number is a JSON number (RFC 8259:
no ``_``, no surrounding space, no ``+``, no ``nan`` or ``inf``); an integer column takes one whose exact
value is whole and fits in a signed 64-bit integer, read without passing through a float. Any other text of
a string column (``None``, ``null`` included) is that text.
"""
from __future__ import annotations

import logging
import math
import re
from decimal import Decimal
from typing import Callable, Union

from stack_builder.errors import shown

LOGGER = logging.getLogger(__name__)

Value = Union[int, float, bool, str, None]

MISSING = ""  # the one spelling of a missing value in a model's CSV output
MAX_FIELD = 128 * 1024  # characters in one value: what Python's csv module reads (its field limit)
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _string(field: str) -> Value:
    if "\x00" in field:  # PostgreSQL's text cannot hold it, and both stores keep the same values
        raise ValueError("a NUL character, which no prediction store can hold")
    return field


def _boolean(field: str) -> Value:
    if field.lower() not in BOOLEANS:
        raise ValueError(f"{shown(field, 40)!r} is not a boolean (true, false, 1 or 0)")
    return BOOLEANS[field.lower()]


def _number(field: str) -> str:
    if not NUMBER_RE.fullmatch(field):
        raise ValueError(f"{shown(field, 40)!r} is not a number (write it as JSON does: digits, '.', 'e'; "
                         f"no '_', spaces or '+'; a missing value is an empty field)")
    return field


def _float(field: str) -> Value:
    number = float(_number(field))
    if not math.isfinite(number):
        raise ValueError(f"{shown(field, 40)} is out of range of a 64-bit float")
    return number


def _integer(field: str) -> Value:
    exact = Decimal(_number(field))
    if not INT64_MIN <= exact <= INT64_MAX:  # (compared before it is made an int: 1e999999999 stays cheap)
        raise ValueError(f"{shown(field, 40)} does not fit in a signed 64-bit integer")
    if exact != exact.to_integral_value():
        raise ValueError(f"{shown(field, 40)} is not a whole number")
    return int(exact)


READERS: dict[str, Callable[[str], Value]] = {"float": _float, "integer": _integer, "boolean": _boolean,
                                              "string": _string}  # by the column types spec.yml declares


def read(kind: str, field: str) -> Value:
    """The value ``field`` stands for in a column of ``kind``; a ValueError says why it cannot be stored."""
    if not field:  # MISSING
        return None
    if len(field) > MAX_FIELD:
        raise ValueError(f"a value of {len(field)} characters (at most {MAX_FIELD})")
    return READERS[kind](field)


def text_of(value: object) -> str | None:
    """A typed value (as read from Parquet) as the text a model would have written, or None for a type no
    column holds (bytes, dates, lists...)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None
