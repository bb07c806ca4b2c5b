"""The transitions events cause in a customer's state: cash application, closing an
invoice and recording its outcome, disputes, adjustments, and the passing of time.

Transitions take the state, mutate it and return what happened (labels resolved,
invoices that went overdue); the caller owns the state it passes in and must write it
back. When an invoice counts as late, when its label resolves and how much of it is at
risk are :mod:`models.policy`'s rules; this module applies them.

Invariant kept by every transition (tested as a property)::

    billed - adjusted - received == open - credit - unapplied
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from models.config import DAY, ScoringConfig
from models.invoice import (
    FLAGS_AT,
    LABEL_DUE,
    NOTICE_DUE,
    WAITS_FOR,
    Invoice,
    Label,
    pack,
    read_at_issue,
    read_due,
    read_paid,
    unpack,
)
from models.money import to_major
from models.policy import OVERDUE_NOTICE_SECONDS, label_horizon, paid_late
from models.state import DOUBLE, HISTORY, CustomerState, Held, id_key, ring_add, ring_has


class Rejected(ValueError):
    """A valid event that this customer's state cannot take (currency mismatch, unknown invoice...)."""



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
    due, issued, amount, payments = read_paid(inv.packed)
    days_late = (at - due) / DAY
    late = max(0.0, days_late)
    w = to_major(amount)
    state.n_paid += 1
    if payments > 1:
        state.n_partial += 1
    history = state.history
    (sum_days_late, sum_days_late_w, sum_w, sum_days_to_pay, sum_terms_days, ewma_days_late,
     first_seen, last_payment) = HISTORY.struct.unpack_from(history)
    outcomes = history[HISTORY.struct.size:] + DOUBLE.pack(round(days_late, 3))
    if len(outcomes) > 8 * cfg.history:
        outcomes = outcomes[8:]
    state.history = HISTORY.struct.pack(
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
    p_late, issued, amount = read_at_issue(inv.packed)
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

    ``x`` is the feature snapshot at issue, as values or already :func:`~models.invoice.pack`-ed.

    >>> cfg = ScoringConfig()
    >>> s = CustomerState("c1")
    >>> receive_payment(s, 300, 5.0, ("i1",), cfg)  # before its invoice: held
    []
    >>> issue_invoice(s, "i1", 10.0, 10.0 + 30 * DAY, 1000, [0.0], 0.3, cfg)
    []
    >>> s.invoices["i1"].open, s.unapplied_units, s.conserved()
    (700, 0, True)
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

    >>> cfg = ScoringConfig()
    >>> s = CustomerState("c1")
    >>> _ = issue_invoice(s, "i1", 0.0, 30 * DAY, 1000, [0.0], 0.3, cfg)
    >>> [(lb.invoice_id, lb.y) for lb in receive_payment(s, 1200, 40 * DAY, (), cfg)]
    [('i1', 1)]
    >>> s.open_units, s.credit, s.conserved()
    (0, 200, True)
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

    >>> cfg = ScoringConfig(grace_days=5, label_lateness_days=1)
    >>> s = CustomerState("c1")
    >>> _ = issue_invoice(s, "i1", 0.0, 30 * DAY, 1000, [0.0], 0.3, cfg)
    >>> labels, overdue = advance(s, 31 * DAY, cfg)
    >>> labels, [inv.invoice_id for inv in overdue]
    ([], ['i1'])
    >>> [(lb.invoice_id, lb.y, lb.resolved_at / DAY) for lb in advance(s, 40 * DAY, cfg)[0]]
    [('i1', 1, 36.0)]
    """
    labels: list[Label] = []
    went_overdue: list[Invoice] = []
    horizon = label_horizon(cfg)
    for inv in state.invoices:
        packed = inv.packed
        waits = WAITS_FOR[packed[FLAGS_AT]]
        if not waits:
            continue
        due = read_due(packed)[0]
        if waits & NOTICE_DUE and now >= due + OVERDUE_NOTICE_SECONDS:
            inv.overdue_noticed = True
            went_overdue.append(inv)
        if waits & LABEL_DUE and now >= due + horizon:
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
        waits = WAITS_FOR[packed[FLAGS_AT]]
        if not waits:
            continue
        due = read_due(packed)[0]
        if waits & NOTICE_DUE:
            t = due + OVERDUE_NOTICE_SECONDS
            if t > after and (best is None or t < best):
                best = t
        if waits & LABEL_DUE:
            t = due + horizon
            if t > after and (best is None or t < best):
                best = t
    return best
