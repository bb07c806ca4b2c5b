"""An open invoice as one bytes record, the tuple of a customer's open invoices, and the
packed feature snapshot an invoice carries from issue until its label is learned.

Byte layout only: which fields an invoice has and how they are read and written. The
accounting rules that change them (cash application, closing, labels, deadlines) are in
:mod:`models.transitions`.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING, SupportsIndex, overload

from models.packing import BYTE, Layout

if TYPE_CHECKING:
    from models.packing import Field

# --- invoices -------------------------------------------------------------------------

# flag bits of an invoice
DISPUTED = 1
"""In dispute now: not collectable, no deadline passes."""
EVER_DISPUTED = 2
"""Was disputed at some point: its label waits for the close."""
OVERDUE_NOTICED = 4
"""Went past due and was reported so once."""
LABELLED = 8
"""Its outcome is known (``label`` is not None)..."""
LATE = 16
"""...and the outcome was late (``label`` is 1)."""

_INVOICE = Layout("packed", ("due", "d"), ("p_late", "d"), ("open", "q"), ("flags", "B"),
                  ("issued", "d"), ("last_paid", "d"), ("amount", "q"), ("payments", "I"),
                  ("id_length", "B"))
"""An invoice's record: these fields, then its id (UTF-8, ``id_length`` bytes), then its
packed snapshot (nothing once dropped). The fields every event's passes over the open
invoices read come first, so that :data:`read_status` gets them in one call."""
FLAGS_AT = _INVOICE.offsets["flags"]
_ID_AT = _INVOICE.offsets["id_length"]
_ID_START = _INVOICE.struct.size

read_status = _INVOICE.reader("due", "p_late", "open", "flags")
"""``due, p_late, open, flags = read_status(invoice.packed)``: one call where the passes over
the open invoices that run on every event would read four attributes, unpacking each."""
read_due = _INVOICE.reader("due")
read_paid = _INVOICE.reader("due", "issued", "amount", "payments")
"""What recording a paid invoice's outcome reads."""
read_at_issue = _INVOICE.reader("p_late", "issued", "amount")
"""What a :class:`Label` copies besides the id and the snapshot."""

NOTICE_DUE, LABEL_DUE = 1, 2


def _waits_for(flags: int) -> int:
    """What an invoice with these flags still waits for as time passes: its overdue notice
    (:data:`NOTICE_DUE`) unless noticed, its label (:data:`LABEL_DUE`) unless labelled or ever
    disputed; nothing while in dispute."""
    if flags & DISPUTED:
        return 0
    return ((0 if flags & OVERDUE_NOTICED else NOTICE_DUE)
            | (0 if flags & (LABELLED | EVER_DISPUTED) else LABEL_DUE))


WAITS_FOR = tuple(_waits_for(flags) for flags in range(256))
""":func:`_waits_for` by flag byte: the deadline passes run on every event."""


def _label_flags(label: int | None) -> int:
    if label is None:
        return 0
    if label not in (0, 1):
        raise ValueError(f"a label is 0 (on time) or 1 (late), got {label!r}")
    return LABELLED | (LATE if label else 0)


class Invoice:
    """An open invoice (or one whose label resolved late while money is still open).

    Every field lives in one bytes record, :attr:`packed` (see :data:`_INVOICE`), and is read
    and written as an attribute. Writes pack a new record; they are rare (a payment, a
    dispute, a label), reads happen on every event.
    """

    __slots__ = ("packed",)

    def __init__(self, invoice_id: str, issued: float, due: float, amount: int, open: int,
                 p_late: float, x: bytes | None, label: int | None = None,
                 disputed: bool = False, ever_disputed: bool = False, payments: int = 0,
                 last_paid: float = 0.0, overdue_noticed: bool = False) -> None:
        if x is not None and not x:
            raise ValueError("a packed snapshot is never empty (see pack)")
        raw_id = invoice_id.encode()
        if not 0 < len(raw_id) < 256:
            raise ValueError(f"an invoice id must be 1-255 bytes, got {len(raw_id)}")
        flags = ((DISPUTED if disputed else 0) | (EVER_DISPUTED if ever_disputed else 0)
                 | (OVERDUE_NOTICED if overdue_noticed else 0)
                 | (0 if label is None else _label_flags(label)))
        self.packed = (_INVOICE.struct.pack(due, p_late, open, flags, issued, last_paid, amount,
                                            payments, len(raw_id)) + raw_id + (x or b""))

    issued: Field[float] = _INVOICE.field("issued")
    due: Field[float] = _INVOICE.field("due")
    amount: Field[int] = _INVOICE.field("amount")
    open: Field[int] = _INVOICE.field("open")
    p_late: Field[float] = _INVOICE.field("p_late")
    """The model's prediction at issue: used for priority and scored when the label resolves."""
    payments: Field[int] = _INVOICE.field("payments")
    last_paid: Field[float] = _INVOICE.field("last_paid")
    disputed: Field[bool] = _INVOICE.flag("flags", DISPUTED)
    ever_disputed: Field[bool] = _INVOICE.flag("flags", EVER_DISPUTED)
    overdue_noticed: Field[bool] = _INVOICE.flag("flags", OVERDUE_NOTICED)

    @classmethod
    def from_packed(cls, packed: bytes) -> Invoice:
        """The invoice whose :attr:`packed` record this is (as a changelog stores it)."""
        if len(packed) < _ID_START + 1 or len(packed) < _ID_START + packed[_ID_AT]:
            raise ValueError(f"{len(packed)} bytes are not an invoice record")
        inv = cls.__new__(cls)
        inv.packed = bytes(packed)
        return inv

    @property
    def invoice_id(self) -> str:
        packed = self.packed
        return packed[_ID_START:_ID_START + packed[_ID_AT]].decode()

    @property
    def x(self) -> bytes | None:
        """Feature snapshot at issue, :func:`pack`-ed (about 80 bytes for a new customer's, 180
        for an established one's); dropped once learned, so a label is learned once.
        :attr:`snapshot` unpacks it."""
        packed = self.packed
        return packed[_ID_START + packed[_ID_AT]:] or None

    @x.setter
    def x(self, value: bytes | None) -> None:
        if value is not None and not value:
            raise ValueError("a packed snapshot is never empty (see pack)")
        packed = self.packed
        self.packed = packed[:_ID_START + packed[_ID_AT]] + (value or b"")

    @property
    def label(self) -> int | None:
        """The outcome once known: 1 late, 0 on time; None while unknown."""
        flags = self.packed[FLAGS_AT]
        return None if not flags & LABELLED else 1 if flags & LATE else 0

    @label.setter
    def label(self, value: int | None) -> None:
        packed = self.packed
        flags = packed[FLAGS_AT] & ~(LABELLED | LATE) | _label_flags(value)
        self.packed = packed[:FLAGS_AT] + BYTE[flags] + packed[FLAGS_AT + 1:]

    @property
    def snapshot(self) -> array | None:  # type: ignore[type-arg]
        """The feature snapshot as an ``array("d")`` (None once learned or dropped)."""
        x = self.x
        return None if x is None else unpack(x)

    def pay(self, units: int, at: float) -> tuple[int, int]:
        """Take up to ``units`` paid at ``at``: returns what was used and what is left open.

        Nothing changes when nothing is open. One new record for the three fields a payment
        changes (open, payments, last_paid).
        """
        rec = _INVOICE.struct
        due, p_late, open_, flags, issued, last_paid, amount, payments, id_length = \
            rec.unpack_from(self.packed)
        used = min(units, open_)
        if used <= 0:
            return 0, open_
        self.packed = rec.pack(due, p_late, open_ - used, flags, issued, max(last_paid, at),
                               amount, payments + 1, id_length) + self.packed[_ID_START:]
        return used, open_ - used

    def resolve(self, y: int) -> bytes | None:
        """Set the label ``y`` and hand over the snapshot, which the invoice no longer keeps."""
        packed = self.packed
        end = _ID_START + packed[_ID_AT]
        flags = packed[FLAGS_AT] & ~(LABELLED | LATE) | _label_flags(y)
        self.packed = packed[:FLAGS_AT] + BYTE[flags] + packed[FLAGS_AT + 1:end]
        return packed[end:] or None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invoice) and other.packed == self.packed

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in INVOICE_FIELDS)
        return f"Invoice({fields})"


INVOICE_FIELDS = ("invoice_id", "issued", "due", "amount", "open", "p_late", "x", "label",
                  "disputed", "ever_disputed", "payments", "last_paid", "overdue_noticed")
"""An invoice's fields in :class:`Invoice`'s argument order (the changelog's readable shape)."""


class OpenInvoices(tuple[Invoice, ...]):
    """A customer's open invoices in issue order: a tuple that can also be looked up by id.

    ``invoices[invoice_id]``, ``invoices.get(invoice_id)`` and ``invoice_id in invoices``
    work as on the dict of invoices this replaces, and :meth:`values` returns the tuple
    itself; iterating gives the invoices (as ``values()`` did). A dict of up to 5 entries
    costs 184 bytes (272 up to 10, and it does not shrink as invoices close) and each key
    would be a 65-byte string, where the id is already in the invoice's record; a tuple
    costs 40 bytes and 8 per invoice, and ``len`` and iteration, which run several times per
    event, stay calls into C. A lookup by id scans, comparing bytes: a customer has a
    handful of open invoices, and every event already walks them all.

    Immutable, as a tuple: the state functions replace ``state.invoices`` with
    :meth:`adding` and :meth:`without`.
    """

    __slots__ = ()

    def values(self) -> OpenInvoices:
        return self

    def keys(self) -> list[str]:
        return [inv.invoice_id for inv in self]

    def items(self) -> list[tuple[str, Invoice]]:
        return [(inv.invoice_id, inv) for inv in self]

    def get(self, invoice_id: str) -> Invoice | None:
        """The invoice with this id, newest first: the processor looks up the invoice it
        has just issued, payments usually the oldest ones (a handful either way)."""
        raw = invoice_id.encode()
        if len(raw) > 255:  # too long to be stored, so not here
            return None
        tag = BYTE[len(raw)] + raw  # as records store it: with its length, so a match is exact
        for inv in tuple.__getitem__(self, _NEWEST_FIRST):  # reversed() would call __getitem__
            if inv.packed.startswith(tag, _ID_AT):
                return inv
        return None

    def adding(self, invoice: Invoice) -> OpenInvoices:
        """These invoices and ``invoice`` (whose id the caller knows is not here yet)."""
        return OpenInvoices((*self, invoice))

    def without(self, invoice: Invoice) -> OpenInvoices:
        """These invoices but ``invoice`` (the object itself, found by identity)."""
        return OpenInvoices([inv for inv in self if inv is not invoice])

    @overload
    def __getitem__(self, key: SupportsIndex) -> Invoice: ...

    @overload
    def __getitem__(self, key: slice) -> tuple[Invoice, ...]: ...

    @overload
    def __getitem__(self, key: str) -> Invoice: ...

    def __getitem__(self, key: SupportsIndex | slice | str) -> Invoice | tuple[Invoice, ...]:
        """By id (a string), or by position as for any tuple."""
        if not isinstance(key, str):
            return super().__getitem__(key)
        inv = self.get(key)
        if inv is None:
            raise KeyError(key)
        return inv

    def __contains__(self, invoice_id: object) -> bool:
        """Whether an invoice with this id is open (ids, not invoices, as for a dict)."""
        return isinstance(invoice_id, str) and self.get(invoice_id) is not None

    def __eq__(self, other: object) -> bool:
        """Equal to the same invoices in the same order, or to a mapping of them by id."""
        if isinstance(other, OpenInvoices):
            return tuple.__eq__(self, other)
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # holds mutable invoices

    def __repr__(self) -> str:
        return f"OpenInvoices({list(self)!r})"


_NEWEST_FIRST = slice(None, None, -1)
NO_INVOICES = OpenInvoices()
"""Shared by every state without open invoices (immutable)."""


_BITS = tuple(1 << i for i in range(255))


def pack(x: Sequence[float]) -> bytes:
    """A feature snapshot as compact bytes, exact (a copy: later changes to ``x`` cannot reach it).

    Open invoices hold their snapshot until the label resolves, and most features of a
    young customer are zero, so zeros are left out: one byte for the number of features
    n, a little-endian bit mask of ceil(n/8) bytes marking the values stored, then those
    values as native doubles. "Zero" means the bit pattern of +0.0, so -0.0 and NaN
    survive as they are.

    >>> raw = pack([0.0, 1.5, -0.0, 0.0])
    >>> len(raw), list(unpack(raw))
    (18, [0.0, 1.5, -0.0, 0.0])
    """
    dense = x if isinstance(x, array) and x.typecode == "d" else array("d", x)
    n = len(dense)
    keep = list(map(bool, array("q", dense.tobytes())))  # 0 exactly for +0.0
    mask = sum(compress(_BITS, keep))
    return (bytes((n,)) + mask.to_bytes((n + 7) // 8, "little")
            + array("d", compress(dense, keep)).tobytes())


def unpack(raw: bytes) -> array:  # type: ignore[type-arg]
    """Inverse of :func:`pack`: the snapshot as an ``array("d")``."""
    n = raw[0]
    start = 1 + (n + 7) // 8
    mask = int.from_bytes(raw[1:start], "little")
    values = iter(array("d", raw[start:]))
    return array("d", [next(values) if mask & bit else 0.0 for bit in _BITS[:n]])


@dataclass(frozen=True, slots=True)
class Label:
    """An invoice's outcome became known: learn ``y`` on the snapshot ``x`` taken at issue."""

    invoice_id: str
    x: array  # type: ignore[type-arg]
    y: int
    p_at_issue: float
    resolved_at: float
    issued: float
    amount: int

