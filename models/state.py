"""A customer's payment-behaviour state and the transitions that events cause.

The state is data: small, bounded (recent histories are capped, older ones live on
as aggregates) and serialisable. Transitions take the state, mutate it and return
what happened (labels resolved, invoices that went overdue); the caller owns the
state it passes in and must write it back. Money is in integer units (see
:mod:`models.money`); times are event-time epoch seconds.

Invariant kept by every transition (tested as a property)::

    billed - adjusted - received == open - credit - unapplied

What a customer holds many of is packed in bytes records (:mod:`models.packing`), read
and written through attributes of the old names: each open invoice (numbers, flags, id
and feature snapshot), the history sums with the recent outcomes, the recent scores and
the alert times. That takes a customer's state from about 3.4 KB to 2 KB on the 180-day
benchmark; the passes that run on every event read several packed fields in one call.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING, NamedTuple, SupportsIndex, overload

from models.config import DAY, ScoringConfig
from models.money import to_major
from models.packing import BYTE, Layout, pack_doubles, unpack_doubles
from models.policy import OVERDUE_NOTICE_SECONDS, label_horizon, paid_late
from schemas.records import ALERT_KINDS

if TYPE_CHECKING:
    from models.packing import Field


class Rejected(ValueError):
    """A valid event that this customer's state cannot take (currency mismatch, unknown invoice...)."""


def id_hash(value: str) -> int:
    """A stable 63-bit hash of an id (Python's ``hash`` is salted per process, this is not).

    >>> id_hash("ev-1") == id_hash("ev-1")
    True
    """
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big") >> 1


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
_FLAGS_AT = _INVOICE.offsets["flags"]
_ID_AT = _INVOICE.offsets["id_length"]
_ID_START = _INVOICE.struct.size

read_status = _INVOICE.reader("due", "p_late", "open", "flags")
"""``due, p_late, open, flags = read_status(invoice.packed)``: one call where the passes over
the open invoices that run on every event would read four attributes, unpacking each."""
_read_due = _INVOICE.reader("due")
_read_paid = _INVOICE.reader("due", "issued", "amount", "payments")
"""What recording a paid invoice's outcome reads."""
_read_at_issue = _INVOICE.reader("p_late", "issued", "amount")
"""What a :class:`Label` copies besides the id and the snapshot."""

_NOTICE, _LABEL = 1, 2


def _waits_for(flags: int) -> int:
    """What an invoice with these flags still waits for as time passes: its overdue notice
    (:data:`_NOTICE`) unless noticed, its label (:data:`_LABEL`) unless labelled or ever
    disputed; nothing while in dispute."""
    if flags & DISPUTED:
        return 0
    return ((0 if flags & OVERDUE_NOTICED else _NOTICE)
            | (0 if flags & (LABELLED | EVER_DISPUTED) else _LABEL))


_WAITS_FOR = tuple(_waits_for(flags) for flags in range(256))
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
        flags = self.packed[_FLAGS_AT]
        return None if not flags & LABELLED else 1 if flags & LATE else 0

    @label.setter
    def label(self, value: int | None) -> None:
        packed = self.packed
        flags = packed[_FLAGS_AT] & ~(LABELLED | LATE) | _label_flags(value)
        self.packed = packed[:_FLAGS_AT] + BYTE[flags] + packed[_FLAGS_AT + 1:]

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
        flags = packed[_FLAGS_AT] & ~(LABELLED | LATE) | _label_flags(y)
        self.packed = packed[:_FLAGS_AT] + BYTE[flags] + packed[_FLAGS_AT + 1:end]
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


@dataclass(slots=True)
class Held:
    """Cash received for invoices not yet seen, applied when they arrive."""

    invoice_ids: list[str]
    units: int
    received: float


NO_HELD: tuple[Held, ...] = ()


_HISTORY = Layout("history", ("sum_days_late", "d"), ("sum_days_late_w", "d"), ("sum_w", "d"),
                  ("sum_days_to_pay", "d"), ("sum_terms_days", "d"), ("ewma_days_late", "d"),
                  ("first_seen", "d"), ("last_payment", "d"))
"""A customer's history in numbers (:attr:`CustomerState.history`): these sums and times,
then the outcomes of the last paid invoices (days late, oldest first), as doubles."""
_SUMS = len(_HISTORY.formats)
"""How many sums and times open the history, before the recent outcomes."""
_DOUBLE = struct.Struct("<d")


class HistoryNumbers(NamedTuple):
    """A customer's history as :attr:`CustomerState.history_numbers` reads it in one call
    (each attribute of the state unpacks on its own)."""

    sum_days_late: float
    sum_days_late_w: float
    sum_w: float
    sum_days_to_pay: float
    sum_terms_days: float
    ewma_days_late: float
    first_seen: float
    last_payment: float
    recent: tuple[float, ...]


_ALERT = struct.Struct("<Bd")
"""One entry of :attr:`CustomerState.alerts`: the kind (its index in ``ALERT_KINDS``) and
the last time it was raised."""

STATE_FIELDS = (
    "customer_id", "currency", "invoices", "closed", "seen", "held", "credit", "credit_at",
    "billed", "received", "adjusted", "n_invoices", "n_paid", "n_labels", "n_late",
    "n_partial", "n_disputes", "sum_days_late", "sum_days_late_w", "sum_w", "sum_days_to_pay",
    "sum_terms_days", "ewma_days_late", "recent", "first_seen", "last_event", "last_payment",
    "band", "p", "p_hist", "alert_at", "offsets",
)
"""A state's fields, as :class:`CustomerState` takes them (the changelog's readable shape)."""


class CustomerState:
    """Everything arscore knows about one customer. Bounded in size whatever the history.

    The constructor takes :data:`STATE_FIELDS`, all read and written as attributes; a few
    are kept packed (the slots listed in :data:`STORED_FIELDS` differ from them there).
    """

    __slots__ = (
        "adjusted",
        "alerts",
        "band",
        "billed",
        "closed",
        "credit",
        "credit_at",
        "currency",
        "customer_id",
        "held",
        "history",
        "invoices",
        "last_event",
        "n_disputes",
        "n_invoices",
        "n_labels",
        "n_late",
        "n_paid",
        "n_partial",
        "offsets",
        "p",
        "received",
        "recent_scores",
        "seen",
    )

    def __init__(self, customer_id: str, currency: str | None = None,
                 invoices: Iterable[Invoice] = NO_INVOICES, closed: bytes = b"", seen: bytes = b"",
                 held: tuple[Held, ...] = NO_HELD, credit: int = 0, credit_at: float = 0.0,
                 billed: int = 0, received: int = 0, adjusted: int = 0, n_invoices: int = 0,
                 n_paid: int = 0, n_labels: int = 0, n_late: int = 0, n_partial: int = 0,
                 n_disputes: int = 0, sum_days_late: float = 0.0, sum_days_late_w: float = 0.0,
                 sum_w: float = 0.0, sum_days_to_pay: float = 0.0, sum_terms_days: float = 0.0,
                 ewma_days_late: float = 0.0, recent: Sequence[float] = (),
                 first_seen: float = 0.0, last_event: float = 0.0, last_payment: float = 0.0,
                 band: int = 0, p: float = -1.0, p_hist: tuple[float, ...] = (),
                 alert_at: Mapping[str, float] | None = None,
                 offsets: dict[str, int] | None = None) -> None:
        self.customer_id = customer_id
        self.currency = None if currency is None else sys.intern(currency)  # as touch() does
        self.invoices: OpenInvoices = (invoices if isinstance(invoices, OpenInvoices)
                                       else OpenInvoices(invoices))
        self.closed = closed
        """Ring of :func:`id_key` of recently closed invoices (see :func:`ring_add`)."""
        self.seen = seen
        """Ring of :func:`id_key` of recently applied event ids, for duplicates."""
        self.held = held
        """Rarely used, so a tuple: the empty one is shared (a list would cost 56 bytes each)."""
        self.credit, self.credit_at = credit, credit_at
        # ledger totals: the conservation invariant is stated over these
        self.billed, self.received, self.adjusted = billed, received, adjusted
        # behaviour aggregates (all history, bounded size)
        self.n_invoices, self.n_paid, self.n_labels = n_invoices, n_paid, n_labels
        self.n_late, self.n_partial, self.n_disputes = n_late, n_partial, n_disputes
        self.history = (_HISTORY.struct.pack(sum_days_late, sum_days_late_w, sum_w, sum_days_to_pay,
                                             sum_terms_days, ewma_days_late, first_seen,
                                             last_payment) + pack_doubles(recent))
        """The sums, times and recent outcomes of :data:`_HISTORY`, packed: read and written
        as the attributes of those names (a boxed float and its slot were 32 bytes each,
        the array of outcomes 64 bytes and more)."""
        self.last_event = last_event
        # score and alert memory
        self.band, self.p = band, p
        self.recent_scores = pack_doubles(p_hist)
        """:attr:`p_hist`, packed."""
        self.alerts: bytes | None = None
        """The last time each alert kind was raised, in the order first raised (entries of
        :data:`_ALERT`); None until the first alert (a dict of them was 184 bytes and more)."""
        self.alert_at = alert_at
        # idempotency: highest source offset applied, per input partition
        self.offsets = offsets
        """None until an event with a source position is applied (replays of files have none)."""

    sum_days_late: Field[float] = _HISTORY.field("sum_days_late")
    sum_days_late_w: Field[float] = _HISTORY.field("sum_days_late_w")
    sum_w: Field[float] = _HISTORY.field("sum_w")
    sum_days_to_pay: Field[float] = _HISTORY.field("sum_days_to_pay")
    sum_terms_days: Field[float] = _HISTORY.field("sum_terms_days")
    ewma_days_late: Field[float] = _HISTORY.field("ewma_days_late")
    first_seen: Field[float] = _HISTORY.field("first_seen")
    last_payment: Field[float] = _HISTORY.field("last_payment")

    @property
    def history_numbers(self) -> HistoryNumbers:
        """The history's sums, times and recent outcomes, all at once (for the features of
        every score)."""
        values = unpack_doubles(self.history)
        return tuple.__new__(HistoryNumbers, (*values[:_SUMS], values[_SUMS:]))

    @property
    def recent(self) -> tuple[float, ...]:
        """Days late of the last paid invoices (at most ``ScoringConfig.history``), oldest
        first (:func:`_record_paid` adds one per paid invoice)."""
        return unpack_doubles(self.history, _HISTORY.struct.size)

    @recent.setter
    def recent(self, values: Sequence[float]) -> None:
        self.history = self.history[:_HISTORY.struct.size] + pack_doubles(values)

    @property
    def p_hist(self) -> tuple[float, ...]:
        """Recent (time, p_late) pairs, flattened: ``(t0, p0, t1, p1, ...)`` (see alerts.track_p)."""
        return unpack_doubles(self.recent_scores)

    @p_hist.setter
    def p_hist(self, values: Sequence[float]) -> None:
        self.recent_scores = pack_doubles(values)

    @property
    def alert_at(self) -> dict[str, float] | None:
        """Last time each alert kind was raised, by kind; None until the first. A copy:
        :meth:`note_alert` records one."""
        if self.alerts is None:
            return None
        return {ALERT_KINDS[k]: t for k, t in _ALERT.iter_unpack(self.alerts)}

    @alert_at.setter
    def alert_at(self, value: Mapping[str, float] | None) -> None:
        if not value:
            self.alerts = None
            return
        unknown = set(value) - set(ALERT_KINDS)
        if unknown:
            raise ValueError(f"unknown alert kinds {sorted(unknown)}")
        self.alerts = b"".join(_ALERT.pack(ALERT_KINDS.index(kind), t) for kind, t in value.items())

    def last_alert(self, kind: str) -> float | None:
        """When an alert of this kind was last raised; None if never."""
        if self.alerts is not None:
            code = ALERT_KINDS.index(kind)
            for k, t in _ALERT.iter_unpack(self.alerts):
                if k == code:
                    return float(t)
        return None

    def note_alert(self, kind: str, at: float) -> None:
        """Remember that an alert of this kind was raised at ``at`` (a kind keeps the place
        where it was first raised, as it did in the dict this replaces)."""
        times = self.alert_at or {}
        times[kind] = at
        self.alert_at = times

    @property
    def open_units(self) -> int:
        return sum(inv.open for inv in self.invoices)

    @property
    def unapplied_units(self) -> int:
        return sum(h.units for h in self.held)

    def conserved(self) -> bool:
        """The money invariant; true after any sequence of transitions."""
        lhs = self.billed - self.adjusted - self.received
        return lhs == self.open_units - self.credit - self.unapplied_units

    def __eq__(self, other: object) -> bool:
        """Equal when every stored field is (packed fields compare bit for bit)."""
        if not isinstance(other, CustomerState):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in STORED_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in STATE_FIELDS)
        return f"CustomerState({fields})"


STORED_FIELDS = CustomerState.__slots__
"""What a state keeps: :data:`STATE_FIELDS`, but ``history`` for the sums, times and
outcomes of :data:`_HISTORY`, ``recent_scores`` for ``p_hist`` and ``alerts`` for
``alert_at``."""


# --- idempotency ---------------------------------------------------------------------


# ``seen`` and ``closed`` are rings of recent id hashes, packed as bytes: 8 bytes per
# :func:`id_hash`, oldest first (an ``array("q")`` costs 47 bytes more per ring, and
# bytes are not tracked by the garbage collector). JSON keeps them as lists of ints.


def id_key(value: str) -> bytes:
    """:func:`id_hash` as the 8 bytes a ring stores (native byte order, as ``array("q")``).

    >>> ring_has(ring_add(b"", id_key("ev-1"), 4), id_key("ev-1"))
    True
    """
    return id_hash(value).to_bytes(8, sys.byteorder)


def ring_has(ring: bytes, key: bytes) -> bool:
    """True when ``key`` is one of the ring's 8-byte entries (not merely a substring)."""
    i = ring.find(key)
    while i >= 0:
        if not i & 7:
            return True
        i = ring.find(key, i + 1)
    return False


def ring_add(ring: bytes, key: bytes, cap: int) -> bytes:
    """The ring with ``key`` appended, the oldest entries dropped beyond ``cap``."""
    ring += key
    excess = len(ring) - 8 * cap
    return ring[excess:] if excess > 0 else ring


def ring_ids(ring: bytes) -> list[int]:
    """The id hashes in a ring, oldest first."""
    return array("q", ring).tolist()


def to_ring(ids: Sequence[int]) -> bytes:
    """Inverse of :func:`ring_ids`."""
    return array("q", ids).tobytes()


def seen_before(state: CustomerState, event_id: str) -> bool:
    """True when this event id was applied recently (bounded memory of ids)."""
    return ring_has(state.seen, id_key(event_id))


def remember(state: CustomerState, event_id: str, cfg: ScoringConfig) -> None:
    remember_key(state, id_key(event_id), cfg)


def remember_key(state: CustomerState, event_key: bytes, cfg: ScoringConfig) -> None:
    """:func:`remember` for a caller that already has ``id_key(event_id)``."""
    state.seen = ring_add(state.seen, event_key, cfg.dedupe_ids)


def touch(state: CustomerState, at: float, currency: str | None) -> None:
    """Check the currency and move the customer's clock; raise Rejected on a mismatch."""
    if currency is not None:
        if state.currency is None:
            state.currency = sys.intern(currency)  # one shared string per code, not per customer
        elif currency != state.currency:
            raise Rejected(f"currency {currency} differs from the customer's {state.currency}")
    if state.first_seen == 0.0:
        state.first_seen = at
    state.last_event = max(state.last_event, at)


# --- closing an invoice and recording its outcome --------------------------------------


def _record_paid(state: CustomerState, inv: Invoice, at: float, cfg: ScoringConfig) -> None:
    """A paid invoice's outcome enters the customer's history (one new history record)."""
    due, issued, amount, payments = _read_paid(inv.packed)
    days_late = (at - due) / DAY
    late = max(0.0, days_late)
    w = to_major(amount)
    state.n_paid += 1
    if payments > 1:
        state.n_partial += 1
    history = state.history
    (sum_days_late, sum_days_late_w, sum_w, sum_days_to_pay, sum_terms_days, ewma_days_late,
     first_seen, last_payment) = _HISTORY.struct.unpack_from(history)
    outcomes = history[_HISTORY.struct.size:] + _DOUBLE.pack(round(days_late, 3))
    if len(outcomes) > 8 * cfg.history:
        outcomes = outcomes[8:]
    state.history = _HISTORY.struct.pack(
        sum_days_late + late, sum_days_late_w + late * w, sum_w + w,
        sum_days_to_pay + max(0.0, (at - issued) / DAY), sum_terms_days,
        0.3 * late + 0.7 * ewma_days_late, first_seen, last_payment) + outcomes


def _resolve(inv: Invoice, y: int, at: float, state: CustomerState) -> Label | None:
    """Mark the invoice's label; returns the learnable Label unless it was resolved before."""
    if inv.label is not None:
        return None
    x = inv.resolve(y)
    state.n_labels += 1
    state.n_late += y
    if x is None:
        return None
    p_late, issued, amount = _read_at_issue(inv.packed)
    return Label(inv.invoice_id, unpack(x), y, p_late, at, issued, amount)


def _close(state: CustomerState, inv: Invoice, at: float, cfg: ScoringConfig,
           labels: list[Label], *, paid: bool) -> None:
    state.invoices = state.invoices.without(inv)
    state.closed = ring_add(state.closed, id_key(inv.invoice_id), cfg.history * 2)
    if paid:
        _record_paid(state, inv, at, cfg)
        label = _resolve(inv, int(paid_late(at, inv.due, cfg)), at, state)
        if label is not None:
            labels.append(label)


def _pay(state: CustomerState, inv: Invoice, units: int, at: float, cfg: ScoringConfig,
         labels: list[Label]) -> int:
    """Apply up to ``units`` to ``inv``; returns what was used."""
    used, left = inv.pay(units, at)
    if used and not left:
        _close(state, inv, at, cfg, labels, paid=True)
    return used


def _oldest_first(state: CustomerState) -> list[Invoice]:
    """Open, undisputed invoices in cash-application order (issue time, then id)."""
    return sorted((i for i in state.invoices.values() if not i.disputed),
                  key=lambda i: (i.issued, i.invoice_id))


def _apply_oldest_first(state: CustomerState, units: int, at: float, cfg: ScoringConfig,
                        labels: list[Label]) -> int:
    for inv in _oldest_first(state):
        if units <= 0:
            break
        units -= _pay(state, inv, units, max(at, inv.issued), cfg, labels)
    return units


def _add_credit(state: CustomerState, units: int, at: float) -> None:
    if units > 0:
        state.credit += units
        state.credit_at = max(state.credit_at, at)


# --- transitions ------------------------------------------------------------------------


def issue_invoice(state: CustomerState, invoice_id: str, issued: float, due: float, units: int,
                  x: Sequence[float] | bytes, p_late: float, cfg: ScoringConfig) -> list[Label]:
    """Open a new invoice carrying its prediction; held cash and credit are applied to it.

    ``x`` is the feature snapshot at issue, as values or already :func:`pack`-ed.
    """
    if invoice_id in state.invoices or ring_has(state.closed, id_key(invoice_id)):
        raise Rejected(f"invoice {invoice_id} was already issued")
    if units <= 0:
        raise Rejected("invoice amount must be positive")
    inv = Invoice(invoice_id, issued, due, units, units, p_late,
                  x if isinstance(x, bytes) else pack(x))
    state.invoices = state.invoices.adding(inv)
    state.billed += units
    state.n_invoices += 1
    state.sum_terms_days += (due - issued) / DAY
    labels: list[Label] = []
    for held in state.held:
        if invoice_id not in held.invoice_ids:
            continue
        if invoice_id in state.invoices:  # an earlier hold may have paid it in full
            held.units -= _pay(state, inv, held.units, max(held.received, issued), cfg, labels)
        held.invoice_ids.remove(invoice_id)
        if held.units == 0 or not held.invoice_ids:
            state.held = tuple(h for h in state.held if h is not held)
            _add_credit(state, held.units, held.received)
    if state.credit > 0 and invoice_id in state.invoices:
        state.credit -= _pay(state, inv, state.credit, max(state.credit_at, issued), cfg, labels)
    return labels


def receive_payment(state: CustomerState, units: int, at: float, invoice_ids: tuple[str, ...],
                    cfg: ScoringConfig) -> list[Label]:
    """Apply cash: named invoices in the order given, unknown ones held, the rest oldest first.

    Whatever is left after the open invoices are paid becomes a credit balance.
    """
    if units <= 0:
        raise Rejected("payment amount must be positive")
    state.received += units
    state.last_payment = max(state.last_payment, at)
    labels: list[Label] = []
    unknown: list[str] = []
    for inv_id in invoice_ids:
        inv = state.invoices.get(inv_id)
        if inv is not None:
            units -= _pay(state, inv, units, at, cfg, labels)
        elif not ring_has(state.closed, id_key(inv_id)):
            unknown.append(inv_id)
    if units > 0 and unknown:
        state.held = (*state.held, Held(unknown, units, at))
        while len(state.held) > cfg.max_unapplied:
            oldest, state.held = state.held[0], state.held[1:]
            _add_credit(state, oldest.units, oldest.received)
        return labels
    if units > 0 and not invoice_ids:
        units = _apply_oldest_first(state, units, at, cfg, labels)
    _add_credit(state, units, at)
    return labels


def adjust_invoice(state: CustomerState, invoice_id: str, units: int, at: float, kind: str,
                   cfg: ScoringConfig) -> list[Label]:
    """Credit note or write-off: lowers the open amount; any excess becomes customer credit.

    A write-off that closes an invoice is a late outcome (the money never came); a credit
    note that cancels an unpaid invoice teaches nothing and its snapshot is dropped.
    """
    if units <= 0:
        raise Rejected("adjustment amount must be positive")
    inv = state.invoices.get(invoice_id)
    if inv is None:
        if ring_has(state.closed, id_key(invoice_id)):
            state.adjusted += units
            _add_credit(state, units, at)
            return []
        raise Rejected(f"invoice {invoice_id} is not known to this customer")
    state.adjusted += units
    used = min(units, inv.open)
    inv.open -= used
    _add_credit(state, units - used, at)
    labels: list[Label] = []
    if inv.open == 0:
        if inv.payments > 0 and kind == "credit_note":
            _close(state, inv, max(inv.last_paid, at), cfg, labels, paid=True)
        else:
            if kind == "write_off":
                label = _resolve(inv, 1, at, state)
                if label is not None:
                    labels.append(label)
            else:
                inv.x = None
            _close(state, inv, at, cfg, labels, paid=False)
    return labels


def set_disputed(state: CustomerState, invoice_id: str, disputed: bool) -> None:
    """Open or close a dispute. A dispute on an already closed invoice changes nothing."""
    inv = state.invoices.get(invoice_id)
    if inv is None:
        if ring_has(state.closed, id_key(invoice_id)):
            return
        raise Rejected(f"invoice {invoice_id} is not known to this customer")
    if disputed and not inv.ever_disputed:
        state.n_disputes += 1
    inv.disputed = disputed
    inv.ever_disputed = inv.ever_disputed or disputed


def advance(state: CustomerState, now: float, cfg: ScoringConfig) -> tuple[list[Label], list[Invoice]]:
    """Move the customer's clock to ``now``: notice invoices past due, resolve overdue labels.

    An undisputed invoice still open ``grace + label_lateness`` days after its due date is
    resolved as late (the label is known then, even though money is still owed).
    Invoices that were ever disputed resolve only when they close.
    """
    labels: list[Label] = []
    went_overdue: list[Invoice] = []
    horizon = label_horizon(cfg)
    for inv in state.invoices:
        packed = inv.packed
        waits = _WAITS_FOR[packed[_FLAGS_AT]]
        if not waits:
            continue
        due = _read_due(packed)[0]
        if waits & _NOTICE and now >= due + OVERDUE_NOTICE_SECONDS:
            inv.overdue_noticed = True
            went_overdue.append(inv)
        if waits & _LABEL and now >= due + horizon:
            label = _resolve(inv, 1, due + horizon, state)
            if label is not None:
                labels.append(label)
    return labels, went_overdue


def next_deadline(state: CustomerState, after: float, cfg: ScoringConfig) -> float | None:
    """The earliest event time after ``after`` at which :func:`advance` would change something."""
    horizon = label_horizon(cfg)
    best: float | None = None
    for inv in state.invoices:
        packed = inv.packed
        waits = _WAITS_FOR[packed[_FLAGS_AT]]
        if not waits:
            continue
        due = _read_due(packed)[0]
        if waits & _NOTICE:
            t = due + OVERDUE_NOTICE_SECONDS
            if t > after and (best is None or t < best):
                best = t
        if waits & _LABEL:
            t = due + horizon
            if t > after and (best is None or t < best):
                best = t
    return best
