"""Field validators shared by every record type: each raises DecodeError naming the field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.codec import DecodeError

MAX_AMOUNT = Decimal("1000000000000")  # 1e12: larger is a data error, not a customer
MONEY_EXPONENT = -4  # at most 4 decimal places: covers every ISO 4217 minor unit
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# Patterns are applied with fullmatch: ``$`` alone would also accept a trailing newline.
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces: a safe Kafka key and log word
_CURRENCY = re.compile(r"[A-Z]{3}")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # plain notation: no sign, exponent, spaces or "_"
# RFC 3339 date-time with upper-case T and Z; the zone is optional here only to say so precisely.
_RFC3339 = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?P<zone>Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


def require(obj: Mapping[str, Any], name: str) -> Any:
    """Return ``obj[name]`` or raise a DecodeError saying the field is missing."""
    if name not in obj or obj[name] is None:
        raise DecodeError("is required", field=name)
    return obj[name]


def ident(obj: Mapping[str, Any], name: str) -> str:
    """An identifier: 1-128 printable ASCII characters without spaces."""
    value = require(obj, name)
    if not isinstance(value, str):
        raise DecodeError(f"must be a string, got {type(value).__name__}", field=name)
    if not _ID.fullmatch(value):
        raise DecodeError("must be 1-128 printable ASCII characters without spaces", field=name)
    return value


def optional_ident(obj: Mapping[str, Any], name: str) -> str | None:
    return None if obj.get(name) is None else ident(obj, name)


def text(obj: Mapping[str, Any], name: str, *, max_len: int = 500) -> str | None:
    """Optional free text (reasons, terms), bounded so a record cannot grow state without limit."""
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(f"must be a string, got {type(value).__name__}", field=name)
    if len(value) > max_len:
        raise DecodeError(f"is longer than {max_len} characters", field=name)
    return value


def money(obj: Mapping[str, Any], name: str) -> Decimal:
    """A positive amount, given as a JSON number or a decimal string, with at most 4 decimals.

    Numbers are converted through their shortest repr, so ``12.1`` is exactly 12.1. Strings
    must be plain ASCII decimals (``"12.10"``): no sign, exponent, spaces or separators.
    """
    value = require(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DecodeError(f"must be a number or a decimal string, got {type(value).__name__}", name)
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError("must be finite", field=name)
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise DecodeError(f"is not a decimal number: {value[:40]!r}", field=name)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise DecodeError(f"is not a decimal number: {str(value)[:40]!r}", field=name) from None
    if not amount.is_finite():
        raise DecodeError("must be finite", field=name)
    if amount <= 0:
        raise DecodeError("must be positive", field=name)
    if amount > MAX_AMOUNT:
        raise DecodeError(f"is larger than {MAX_AMOUNT}", field=name)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < MONEY_EXPONENT and amount != amount.quantize(
        Decimal(1).scaleb(MONEY_EXPONENT)
    ):
        raise DecodeError("has more than 4 decimal places", field=name)
    return amount


def currency(obj: Mapping[str, Any], name: str = "currency") -> str:
    value = require(obj, name)
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise DecodeError("must be a 3-letter upper-case ISO 4217 code", field=name)
    return value


def timestamp(obj: Mapping[str, Any], name: str) -> datetime:
    """An RFC 3339 timestamp with a zone, between 2000 and 2100, returned in UTC."""
    value = require(obj, name)
    if not isinstance(value, str):
        raise DecodeError(f"must be an RFC 3339 string, got {type(value).__name__}", field=name)
    match = _RFC3339.fullmatch(value) if len(value) <= 40 else None
    if match is None:
        raise DecodeError(f"is not an RFC 3339 timestamp: {value[:40]!r}", field=name)
    if match["zone"] is None:
        raise DecodeError("must carry a time zone (e.g. Z or +02:00)", field=name)
    try:
        parsed = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:  # e.g. February 30th
        raise DecodeError(f"is not an RFC 3339 timestamp: {value[:40]!r}", field=name) from None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 falls before year 1
        raise DecodeError("is outside the years 2000-2099", field=name) from None
    if not MIN_TIME <= parsed < MAX_TIME:
        raise DecodeError("is outside the years 2000-2099", field=name)
    return parsed


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix, second precision unless there are microseconds."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_money(value: Decimal) -> str:
    """Plain decimal notation, never exponent form: ``Decimal('1E+3')`` -> ``'1000'``."""
    return f"{value:f}"


def schema_version(obj: Mapping[str, Any], expected: int) -> int:
    value = require(obj, "schema_version")
    if value != expected or isinstance(value, bool):
        raise DecodeError(f"unsupported schema version {value!r}, expected {expected}",
                          field="schema_version")
    return expected
