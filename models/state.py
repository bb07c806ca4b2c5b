"""A customer's payment-behaviour state and the transitions that events cause.

The state is data: small, bounded (recent histories are capped, older ones live on
as aggregates) and serialisable. Transitions take the state, mutate it and return
what happened (labels resolved, invoices that went overdue); the caller owns the
state it passes in and must write it back. Money is in integer units (see
:mod:`models.money`); times are event-time epoch seconds.

Invariant kept by every transition (tested as a property)::

    billed - adjusted - received == open - credit - unapplied
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress

from models.config import DAY, ScoringConfig


class Rejected(ValueError):
    """A valid event that this customer's state cannot take (currency mismatch, unknown invoice...)."""


def id_hash(value: str) -> int:
    """A stable 63-bit hash of an id (Python's ``hash`` is salted per process, this is not).

    >>> id_hash("ev-1") == id_hash("ev-1")
    True
    """
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big") >> 1


@dataclass(slots=True)
class Invoice:
    """An open invoice (or one whose label resolved late while money is still open)."""

    invoice_id: str
    issued: float
    due: float
    amount: int
    open: int
    p_late: float
    """The model's prediction at issue: used for priority and scored when the label resolves."""
    x: bytes | None
    """Feature snapshot at issue, :func:`pack`-ed (about 80 bytes for a new customer's, 180
    for an established one's, against 281 for an ``array("d")``; and bytes are not tracked
    by the garbage collector); dropped once learned, so a label is learned once.
    :attr:`snapshot` unpacks it."""
    label: int | None = None
    disputed: bool = False
    ever_disputed: bool = False
    payments: int = 0
    last_paid: float = 0.0
    overdue_noticed: bool = False

    @property
    def snapshot(self) -> array | None:  # type: ignore[type-arg]
        """The feature snapshot as an ``array("d")`` (None once learned or dropped)."""
        return None if self.x is None else unpack(self.x)


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


@dataclass(slots=True)
class CustomerState:
    """Everything arscore knows about one customer. Bounded in size whatever the history."""

    customer_id: str
    currency: str | None = None
    invoices: dict[str, Invoice] = field(default_factory=dict)
    closed: bytes = b""
    """Ring of :func:`id_key` of recently closed invoices (see :func:`ring_add`)."""
    seen: bytes = b""
    """Ring of :func:`id_key` of recently applied event ids, for duplicates."""
    held: tuple[Held, ...] = NO_HELD
    """Rarely used, so a tuple: the empty one is shared (a list would cost 56 bytes each)."""
    credit: int = 0
    credit_at: float = 0.0
    # ledger totals: the conservation invariant is stated over these
    billed: int = 0
    received: int = 0
    adjusted: int = 0
    # behaviour aggregates (all history, bounded size)
    n_invoices: int = 0
    n_paid: int = 0
    n_labels: int = 0
    n_late: int = 0
    n_partial: int = 0
    n_disputes: int = 0
    sum_days_late: float = 0.0
    sum_days_late_w: float = 0.0
    sum_w: float = 0.0
    sum_days_to_pay: float = 0.0
    sum_terms_days: float = 0.0
    ewma_days_late: float = 0.0
    recent: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    first_seen: float = 0.0
    last_event: float = 0.0
    last_payment: float = 0.0
    # score and alert memory
    band: int = 0
    p: float = -1.0
    p_hist: tuple[float, ...] = ()
    """Recent (time, p_late) pairs, flattened: ``(t0, p0, t1, p1, ...)`` (see alerts.track_p)."""
    alert_at: dict[str, float] | None = None
    """Last time each alert kind was raised; None until the first (an empty dict is 64 bytes)."""
    # idempotency: highest source offset applied, per input partition
    offsets: dict[str, int] | None = None
    """None until an event with a source position is applied (replays of files have none)."""

    def __post_init__(self) -> None:
        if self.currency is not None:  # as touch() does: decoded codes are new strings each time
            self.currency = sys.intern(self.currency)

    @property
    def open_units(self) -> int:
        return sum(inv.open for inv in self.invoices.values())

    @property
    def unapplied_units(self) -> int:
        return sum(h.units for h in self.held)

    def conserved(self) -> bool:
        """The money invariant; true after any sequence of transitions."""
        lhs = self.billed - self.adjusted - self.received
        return lhs == self.open_units - self.credit - self.unapplied_units


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
    days_late = (at - inv.due) / DAY
    late = max(0.0, days_late)
    w = inv.amount / 10_000
    state.n_paid += 1
    state.sum_days_late += late
    state.sum_days_late_w += late * w
    state.sum_w += w
    state.sum_days_to_pay += max(0.0, (at - inv.issued) / DAY)
    state.ewma_days_late = 0.3 * late + 0.7 * state.ewma_days_late
    if inv.payments > 1:
        state.n_partial += 1
    state.recent.append(round(days_late, 3))
    if len(state.recent) > cfg.history:
        del state.recent[0]


def _resolve(inv: Invoice, y: int, at: float, state: CustomerState) -> Label | None:
    """Mark the invoice's label; returns the learnable Label unless it was resolved before."""
    if inv.label is not None:
        return None
    inv.label = y
    state.n_labels += 1
    state.n_late += y
    x, inv.x = inv.x, None
    return None if x is None else Label(inv.invoice_id, unpack(x), y, inv.p_late, at,
                                        inv.issued, inv.amount)


def _close(state: CustomerState, inv: Invoice, at: float, cfg: ScoringConfig,
           labels: list[Label], *, paid: bool) -> None:
    del state.invoices[inv.invoice_id]
    state.closed = ring_add(state.closed, id_key(inv.invoice_id), cfg.history * 2)
    if paid:
        _record_paid(state, inv, at, cfg)
        label = _resolve(inv, int(at > inv.due + cfg.grace_days * DAY), at, state)
        if label is not None:
            labels.append(label)


def _pay(state: CustomerState, inv: Invoice, units: int, at: float, cfg: ScoringConfig,
         labels: list[Label]) -> int:
    """Apply up to ``units`` to ``inv``; returns what was used."""
    used = min(units, inv.open)
    if used <= 0:
        return 0
    inv.open -= used
    inv.payments += 1
    inv.last_paid = max(inv.last_paid, at)
    if inv.open == 0:
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
    state.invoices[invoice_id] = inv
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
    horizon = (cfg.grace_days + cfg.label_lateness_days) * DAY
    for inv in state.invoices.values():
        if inv.disputed:
            continue
        if not inv.overdue_noticed and now >= inv.due + 1.0:
            inv.overdue_noticed = True
            went_overdue.append(inv)
        if inv.label is None and not inv.ever_disputed and now >= inv.due + horizon:
            label = _resolve(inv, 1, inv.due + horizon, state)
            if label is not None:
                labels.append(label)
    return labels, went_overdue


def next_deadline(state: CustomerState, after: float, cfg: ScoringConfig) -> float | None:
    """The earliest event time after ``after`` at which :func:`advance` would change something."""
    horizon = (cfg.grace_days + cfg.label_lateness_days) * DAY
    best: float | None = None
    for inv in state.invoices.values():
        if inv.disputed:
            continue
        if not inv.overdue_noticed:
            t = inv.due + 1.0
            if t > after and (best is None or t < best):
                best = t
        if inv.label is None and not inv.ever_disputed:
            t = inv.due + horizon
            if t > after and (best is None or t < best):
                best = t
    return best
