"""The one place that owns orjson and its options.

Every decode failure in arscore becomes a :class:`DecodeError` carrying a human
reason and, where known, the offending field, so callers can dead-letter it
without guessing what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 1_000_000
"""Records larger than this are refused before parsing (oversized-message guard)."""


class DecodeError(ValueError):
    """A record could not be turned into a valid value; ``reason`` says why in plain words.

    >>> str(DecodeError("must be positive", field="amount"))
    'amount: must be positive'
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """Encode to compact JSON bytes; Decimals become strings so money never passes through float.

    >>> dumps({"b": Decimal("1.10"), "a": 1})
    b'{"a":1,"b":"1.10"}'
    """
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SORT_KEYS)


def dumps_with(obj: Any, default: Callable[[Any], Any]) -> bytes:
    """Compact JSON bytes in the objects' own key order, ``default`` encoding the caller's types.

    For internal records written often and read back only by arscore (the worker's
    changelog): no key sorting, and the caller decides how its own types travel.

    >>> dumps_with({"b": b"x", "a": 1}, lambda v: v.decode())
    b'{"b":"x","a":1}'
    """
    return orjson.dumps(obj, default=default)


def loads(raw: bytes | str, max_bytes: int | None = MAX_RECORD_BYTES) -> Any:
    """Parse JSON, turning every failure (size, encoding, syntax) into :class:`DecodeError`.

    >>> loads(b'{"a": 1}')
    {'a': 1}
    >>> loads(b'{"a": ')
    Traceback (most recent call last):
    ...
    schemas.codec.DecodeError: not valid JSON: unexpected end of data: line 1 column 7 (char 6)
    """
    size = len(raw)
    if max_bytes is not None:
        if isinstance(raw, str) and size > max_bytes // 4:  # up to 4 UTF-8 bytes a character
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise DecodeError(f"record is {size} bytes, larger than the {max_bytes} limit")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from exc
