"""A customer's payment-behaviour state: the data, and how it is laid out in memory.

The state is data: small, bounded (recent histories are capped, older ones live on
as aggregates) and serialisable. The transitions that events cause are in
:mod:`models.transitions`; an open invoice's record is in :mod:`models.invoice`. Money is
in integer units (see :mod:`models.money`); times are event-time epoch seconds.

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
from typing import TYPE_CHECKING, NamedTuple

from models.config import ScoringConfig
from models.invoice import NO_INVOICES, Invoice, OpenInvoices
from models.packing import Layout, pack_doubles, unpack_doubles
from schemas.records import ALERT_KINDS

if TYPE_CHECKING:
    from models.packing import Field


def id_hash(value: str) -> int:
    """A stable 63-bit hash of an id (Python's ``hash`` is salted per process, this is not).

    >>> id_hash("ev-1") == id_hash("ev-1")
    True
    """
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big") >> 1


@dataclass(slots=True)
class Held:
    """Cash received for invoices not yet seen, applied when they arrive."""

    invoice_ids: list[str]
    units: int
    received: float


NO_HELD: tuple[Held, ...] = ()


HISTORY = Layout("history", ("sum_days_late", "d"), ("sum_days_late_w", "d"), ("sum_w", "d"),
                  ("sum_days_to_pay", "d"), ("sum_terms_days", "d"), ("ewma_days_late", "d"),
                  ("first_seen", "d"), ("last_payment", "d"))
"""A customer's history in numbers (:attr:`CustomerState.history`): these sums and times,
then the outcomes of the last paid invoices (days late, oldest first), as doubles."""
_SUMS = len(HISTORY.formats)
"""How many sums and times open the history, before the recent outcomes."""
DOUBLE = struct.Struct("<d")


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
    "band", "p", "p_hist", "alert_at",
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
                 alert_at: Mapping[str, float] | None = None) -> None:
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
        self.history = (HISTORY.struct.pack(sum_days_late, sum_days_late_w, sum_w, sum_days_to_pay,
                                             sum_terms_days, ewma_days_late, first_seen,
                                             last_payment) + pack_doubles(recent))
        """The sums, times and recent outcomes of :data:`HISTORY`, packed: read and written
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

    sum_days_late: Field[float] = HISTORY.field("sum_days_late")
    sum_days_late_w: Field[float] = HISTORY.field("sum_days_late_w")
    sum_w: Field[float] = HISTORY.field("sum_w")
    sum_days_to_pay: Field[float] = HISTORY.field("sum_days_to_pay")
    sum_terms_days: Field[float] = HISTORY.field("sum_terms_days")
    ewma_days_late: Field[float] = HISTORY.field("ewma_days_late")
    first_seen: Field[float] = HISTORY.field("first_seen")
    last_payment: Field[float] = HISTORY.field("last_payment")

    @property
    def history_numbers(self) -> HistoryNumbers:
        """The history's sums, times and recent outcomes, all at once (for the features of
        every score)."""
        values = unpack_doubles(self.history)
        return tuple.__new__(HistoryNumbers, (*values[:_SUMS], values[_SUMS:]))

    @property
    def recent(self) -> tuple[float, ...]:
        """Days late of the last paid invoices (at most ``ScoringConfig.history``), oldest
        first (a paid invoice adds one: :mod:`models.transitions`)."""
        return unpack_doubles(self.history, HISTORY.struct.size)

    @recent.setter
    def recent(self, values: Sequence[float]) -> None:
        self.history = self.history[:HISTORY.struct.size] + pack_doubles(values)

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
outcomes of :data:`HISTORY`, ``recent_scores`` for ``p_hist`` and ``alerts`` for
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


def remember_key(state: CustomerState, event_key: bytes, cfg: ScoringConfig) -> None:
    """:func:`remember` for a caller that already has ``id_key(event_id)``."""
    state.seen = ring_add(state.seen, event_key, cfg.dedupe_ids)
