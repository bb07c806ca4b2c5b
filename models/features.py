"""Features of a customer (and of the invoice being predicted), from state at prediction time only.

Everything here reads the state as it is *now* (event time ``now``), so a snapshot
taken at invoice issue cannot contain anything that happened after issue: the
label-leakage guard in the tests relies on this module having no other input.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

from models.config import DAY, ScoringConfig
from models.invoice import DISPUTED, Invoice, read_status
from models.money import to_major
from models.policy import at_risk_p, grace_seconds, past_due, priority_units
from models.state import CustomerState

FEATURE_NAMES: tuple[str, ...] = (
    "history_log",          # log1p(resolved invoices)
    "late_ratio",           # share of resolved invoices late, smoothed towards the prior
    "avg_days_late",        # mean days late of paid invoices (early counts as 0)
    "weighted_days_late",   # amount-weighted mean days late
    "recent_days_late",     # mean days late of the last 3 paid invoices (negative = early)
    "ewma_days_late",       # exponentially weighted days late (recent matter more)
    "lateness_trend",       # recent (last 3) minus older (rest of the window) days late
    "avg_days_to_pay",      # mean days from issue to full payment
    "open_count_log",       # log1p(open invoices)
    "open_amount_log",      # log1p(open amount, major units)
    "overdue_share",        # overdue open amount / open amount
    "aging_current",        # share of open amount not yet due
    "aging_1_30",           # share 1-30 days past due
    "aging_31_60",
    "aging_61_90",
    "aging_90_plus",
    "max_days_past_due",    # oldest open invoice's days past due / 30
    "partial_ratio",        # share of paid invoices settled in several payments
    "dispute_ratio",        # share of invoices ever disputed
    "open_disputed",        # open invoices in dispute
    "size_ratio_log",       # log(this invoice / the customer's average invoice)
    "terms_months",         # this invoice's terms, in 30-day months
    "tenure_log",           # log1p(days since first seen)
    "days_since_payment_log",  # log1p(days since last payment); 0 if never paid
    "credit_share",         # credit balance / average invoice
)
N_FEATURES = len(FEATURE_NAMES)


def _mean(values: array | list[float]) -> float:  # type: ignore[type-arg]
    return sum(values) / len(values) if len(values) else 0.0


class OpenBook:
    """One pass over a customer's open invoices at ``now``: what features and the score need.

    Features (aging buckets, oldest days past due, disputes) and the score record (open,
    overdue and at-risk amounts) used to walk the invoices five times per score; this
    walks them once. Every figure is computed with the same expression, in the same
    invoice order, as the separate functions in :mod:`models.scoring`, so values are equal.
    """

    __slots__ = ("at_risk", "buckets", "disputed", "horizon", "max_dpd", "now", "open", "overdue")

    def __init__(self, state: CustomerState, now: float, grace: float) -> None:
        horizon = grace
        total = overdue = disputed = 0
        b0 = b1 = b2 = b3 = b4 = 0
        max_dpd = 0.0
        at_risk = 0.0
        for inv in state.invoices:  # the body is add()'s, inlined: this is hot
            due, p_late, units, flags = read_status(inv.packed)
            total += units
            at_risk += units * at_risk_p(p_late, due, now, horizon)
            if flags & DISPUTED:
                disputed += 1
            if past_due(due, now):
                overdue += units
            dpd = (now - due) / DAY
            if dpd <= 0:
                b0 += units
                continue
            if dpd > max_dpd:
                max_dpd = dpd
            if dpd <= 30:
                b1 += units
            elif dpd <= 60:
                b2 += units
            elif dpd <= 90:
                b3 += units
            else:
                b4 += units
        self.now, self.horizon = now, horizon
        self.open = total
        """Open amount (units)."""
        self.overdue = overdue
        """Open amount past its due date (units)."""
        self.buckets = [b0, b1, b2, b3, b4]
        """Open amount by aging bucket: current, 1-30, 31-60, 61-90, 90+ days past due."""
        self.max_dpd = max_dpd
        """Days past due of the oldest open invoice, 0 if none is past due."""
        self.disputed = disputed
        """Open invoices in dispute."""
        self.at_risk = at_risk
        """Sum over invoices of open amount x :func:`~models.policy.at_risk_p`, as a float."""

    def add(self, inv: Invoice) -> None:
        """Count one more invoice, as if it had come last in the pass (same arithmetic)."""
        now = self.now
        due, p_late, units, flags = read_status(inv.packed)
        self.open += units
        self.at_risk += units * at_risk_p(p_late, due, now, self.horizon)
        if flags & DISPUTED:
            self.disputed += 1
        if past_due(due, now):
            self.overdue += units
        dpd = (now - due) / DAY
        if dpd <= 0:
            self.buckets[0] += units
            return
        if dpd > self.max_dpd:
            self.max_dpd = dpd
        self.buckets[1 if dpd <= 30 else 2 if dpd <= 60 else 3 if dpd <= 90 else 4] += units

    @property
    def priority(self) -> int:
        """Money at risk (units, whole cents): :func:`~models.policy.priority_units`."""
        return priority_units(self.at_risk)


SAME_AFTER_ISSUE = (0, 1, 2, 3, 4, 5, 6, 7, 17, 22, 23)
"""Features an invoice's issue cannot change at the same moment (history, partial payments,
tenure, days since payment), unless held cash or credit pays it on arrival."""


def feature_list(state: CustomerState, now: float, cfg: ScoringConfig, amount: int | None = None,
                 terms_days: float | None = None, book: OpenBook | None = None,
                 same: Sequence[float] | None = None) -> list[float]:
    """:func:`features` as a list (the per-event path scores it without building an array).

    ``book`` is the open-invoice pass at ``now``, if the caller has already made it.
    ``same`` is a feature vector of this customer at ``now`` whose :data:`SAME_AFTER_ISSUE`
    features are still right (the snapshot taken just before a plain issue): those are
    copied instead of recomputed.
    """
    s = state
    n_invoices = s.n_invoices
    avg_amount = s.billed / n_invoices if n_invoices else 0.0
    if amount is None:
        amount = int(avg_amount)
    if terms_days is None:
        terms_days = s.sum_terms_days / n_invoices if n_invoices else 30.0
    n_paid = s.n_paid
    if same is None:
        k = 2.0  # pseudo-count of the prior
        n_labels = s.n_labels
        h = s.history_numbers  # packed: read at once
        recent = h.recent
        last3 = recent[-3:]
        mean3 = sum(last3) / len(last3) if last3 else 0.0
        head = [
            math.log1p(n_labels),
            (s.n_late + k * cfg.prior_late_rate) / (n_labels + k),
            h.sum_days_late / n_paid if n_paid else 0.0,
            h.sum_days_late_w / h.sum_w if h.sum_w else 0.0,
            mean3,
            h.ewma_days_late,
            mean3 - sum(recent[:-3]) / (len(recent) - 3) if len(recent) > 3 else 0.0,
            h.sum_days_to_pay / n_paid if n_paid else 0.0,
        ]
        partial = s.n_partial / n_paid if n_paid else 0.0
        tenure = math.log1p(max(0.0, now - h.first_seen) / DAY) if h.first_seen else 0.0
        since = math.log1p(max(0.0, now - h.last_payment) / DAY) if h.last_payment else 0.0
    else:
        head = list(same[:8])
        partial, tenure, since = same[17], same[22], same[23]
    if book is None:
        book = OpenBook(s, now, grace_seconds(cfg))
    open_total = book.open
    if open_total:
        b0, b1, b2, b3, b4 = book.buckets
        shares = [b0 / open_total, b1 / open_total, b2 / open_total, b3 / open_total,
                  b4 / open_total]
        overdue_share = 1.0 - shares[0]
    else:
        shares = [0.0, 0.0, 0.0, 0.0, 0.0]
        overdue_share = 0.0
    max_dpd = book.max_dpd
    head += (
        math.log1p(len(s.invoices)),
        math.log1p(to_major(open_total)),
        overdue_share,
        *shares,
        (max_dpd if max_dpd < 365.0 else 365.0) / 30.0,
        partial,
        s.n_disputes / n_invoices if n_invoices else 0.0,
        float(book.disputed),
        math.log(max(amount, 1) / avg_amount) if avg_amount > 0 else 0.0,
        terms_days / 30.0,
        tenure,
        since,
        s.credit / avg_amount if avg_amount > 0 else 0.0,
    )
    return head


def features(state: CustomerState, now: float, cfg: ScoringConfig,
             amount: int | None = None, terms_days: float | None = None,
             book: OpenBook | None = None) -> array:  # type: ignore[type-arg]
    """The feature vector (ordered as :data:`FEATURE_NAMES`) for an invoice issued at ``now``.

    With ``amount``/``terms_days`` left out, the invoice is the customer's usual one: this
    is how the customer-level score ("a new invoice issued now") is computed.

    >>> from models.state import CustomerState
    >>> x = features(CustomerState("c1"), 0.0, ScoringConfig())
    >>> len(x) == N_FEATURES, x[FEATURE_NAMES.index("late_ratio")]
    (True, 0.3)
    """
    return array("d", feature_list(state, now, cfg, amount, terms_days, book))


def as_dict(x: Sequence[float]) -> dict[str, float]:
    """River takes dicts; the core keeps compact arrays."""
    return dict(zip(FEATURE_NAMES, x, strict=True))
