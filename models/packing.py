"""Fixed-layout bytes records whose fields read and write as attributes.

A boxed float costs 24 bytes and an int 28 to 32, plus the 8-byte slot that points at
it; packed in a bytes record a field costs its own size (8, or 1 for a flag byte), and
one bytes object costs 33 bytes whatever it holds, is not tracked by the garbage
collector and travels to the changelog as it is. The price is time: a read unpacks and
a write packs a new record, so the classes using this keep their records for what they
hold many of per customer (invoices, history, scores) and read several fields in one
call (:meth:`Layout.reader`) where a loop runs on every event.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

T = TypeVar("T")

if TYPE_CHECKING:
    class Field(Generic[T]):
        """How mypy sees a packed field: an attribute of type T (at run time, a property)."""

        def __get__(self, obj: object, owner: object = None) -> T: ...

        def __set__(self, obj: object, value: T) -> None: ...


class Layout:
    """Named fixed-size fields packed back to back in one bytes record (little-endian, no
    padding, :mod:`struct` formats), kept by the objects using it in their slot ``slot``.

    >>> POINT = Layout("packed", ("x", "d"), ("n", "q"), ("flags", "B"))
    >>> class Point:
    ...     __slots__ = ("packed",)
    ...     x, n, on = POINT.field("x"), POINT.field("n"), POINT.flag("flags", 1)
    >>> p = Point()
    >>> p.packed = POINT.struct.pack(1.5, 7, 0)
    >>> p.n += 1
    >>> p.on = True
    >>> (p.x, p.n, p.on, len(p.packed), POINT.reader("n", "flags")(p.packed))
    (1.5, 8, True, 17, (8, 1))
    """

    def __init__(self, slot: str, *fields: tuple[str, str]) -> None:
        self.slot = slot
        self.struct = struct.Struct("<" + "".join(fmt for _, fmt in fields))
        self.formats = dict(fields)
        self.offsets: dict[str, int] = {}
        offset = 0
        for name, fmt in fields:
            self.offsets[name] = offset
            offset += struct.calcsize("<" + fmt)

    def reader(self, *names: str) -> Callable[[bytes], tuple[Any, ...]]:
        """A function reading the fields ``names`` (in layout order) of a record in one call,
        skipping the others."""
        order = [name for name in self.formats if name in names]
        if order != list(names):
            raise ValueError(f"{names} are not fields of the layout in its order")
        fmt, wanted = "<", set(names)
        for name, field_fmt in self.formats.items():
            if not wanted:
                break
            fmt += field_fmt if name in wanted else f"{struct.calcsize('<' + field_fmt)}x"
            wanted.discard(name)
        return struct.Struct(fmt).unpack_from

    def field(self, name: str) -> Any:
        """A read/write attribute for field ``name``; a write packs a new record.

        Typed ``Any`` so that the annotation it is assigned to gives its type in the class
        (``issued: Field[float] = LAYOUT.field("issued")``).
        """
        cell = struct.Struct("<" + self.formats[name])
        read, write = cell.unpack_from, cell.pack
        slot, start = self.slot, self.offsets[name]
        end = start + cell.size

        def get(obj: Any) -> Any:
            return read(getattr(obj, slot), start)[0]

        def put(obj: Any, value: Any) -> None:
            packed = getattr(obj, slot)
            setattr(obj, slot, packed[:start] + write(value) + packed[end:])

        return property(get, put, doc=f"``{self.formats[name]}`` at byte {start} of ``{slot}``")

    def flag(self, name: str, bit: int) -> Any:
        """A read/write boolean attribute kept as ``bit`` of the one-byte field ``name``."""
        slot, at = self.slot, self.offsets[name]

        def get(obj: Any) -> bool:
            return bool(getattr(obj, slot)[at] & bit)

        def put(obj: Any, value: bool) -> None:
            packed = getattr(obj, slot)
            flags = packed[at] | bit if value else packed[at] & ~bit
            setattr(obj, slot, packed[:at] + BYTE[flags] + packed[at + 1:])

        return property(get, put, doc=f"bit {bit} of ``{name}`` in ``{slot}``")


BYTE = tuple(bytes((i,)) for i in range(256))
"""Every one-byte bytes object, by value."""

_DOUBLES = [struct.Struct(f"<{n}d") for n in range(33)]
"""Structs of 0 to 32 doubles, made once (recent outcomes and scores are read per score)."""


def pack_doubles(values: Sequence[float]) -> bytes:
    """Floats as little-endian doubles (exact)."""
    n = len(values)
    return (_DOUBLES[n] if n < 33 else struct.Struct(f"<{n}d")).pack(*values)


def unpack_doubles(raw: bytes, start: int = 0) -> tuple[float, ...]:
    """Inverse of :func:`pack_doubles`, from byte ``start`` of ``raw`` to its end."""
    n = (len(raw) - start) >> 3
    return (_DOUBLES[n] if n < 33 else struct.Struct(f"<{n}d")).unpack_from(raw, start)
