"""Features of a customer (and of the invoice being predicted), from state at prediction time only.

Everything here reads the state as it is *now* (event time ``now``), so a snapshot
taken at invoice issue cannot contain anything that happened after issue: the
label-leakage guard in the tests relies on this module having no other input.
"""

from __future__ import annotations

import math
from array import array

from models.config import DAY, ScoringConfig
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


def features(state: CustomerState, now: float, cfg: ScoringConfig,
             amount: int | None = None, terms_days: float | None = None) -> array:  # type: ignore[type-arg]
    """The feature vector (ordered as :data:`FEATURE_NAMES`) for an invoice issued at ``now``.

    With ``amount``/``terms_days`` left out, the invoice is the customer's usual one: this
    is how the customer-level score ("a new invoice issued now") is computed.

    >>> from models.state import CustomerState
    >>> x = features(CustomerState("c1"), 0.0, ScoringConfig())
    >>> len(x) == N_FEATURES, x[FEATURE_NAMES.index("late_ratio")]
    (True, 0.3)
    """
    s = state
    avg_amount = s.billed / s.n_invoices if s.n_invoices else 0.0
    if amount is None:
        amount = int(avg_amount)
    if terms_days is None:
        terms_days = s.sum_terms_days / s.n_invoices if s.n_invoices else 30.0
    k = 2.0  # pseudo-count of the prior
    late_ratio = (s.n_late + k * cfg.prior_late_rate) / (s.n_labels + k)
    recent = s.recent
    last3 = recent[-3:]
    older = recent[:-3]
    trend = _mean(last3) - _mean(older) if len(older) else 0.0

    open_total = 0
    buckets = [0, 0, 0, 0, 0]
    max_dpd = 0.0
    open_disputed = 0
    for inv in s.invoices.values():
        open_total += inv.open
        dpd = (now - inv.due) / DAY
        if inv.disputed:
            open_disputed += 1
        if dpd <= 0:
            buckets[0] += inv.open
            continue
        max_dpd = max(max_dpd, dpd)
        buckets[1 if dpd <= 30 else 2 if dpd <= 60 else 3 if dpd <= 90 else 4] += inv.open
    shares = [b / open_total for b in buckets] if open_total else [0.0] * 5
    return array("d", (
        math.log1p(s.n_labels),
        late_ratio,
        s.sum_days_late / s.n_paid if s.n_paid else 0.0,
        s.sum_days_late_w / s.sum_w if s.sum_w else 0.0,
        _mean(last3),
        s.ewma_days_late,
        trend,
        s.sum_days_to_pay / s.n_paid if s.n_paid else 0.0,
        math.log1p(len(s.invoices)),
        math.log1p(open_total / 10_000),
        1.0 - shares[0] if open_total else 0.0,
        *shares,
        min(max_dpd, 365.0) / 30.0,
        s.n_partial / s.n_paid if s.n_paid else 0.0,
        s.n_disputes / s.n_invoices if s.n_invoices else 0.0,
        float(open_disputed),
        math.log(max(amount, 1) / avg_amount) if avg_amount > 0 else 0.0,
        terms_days / 30.0,
        math.log1p(max(0.0, now - s.first_seen) / DAY) if s.first_seen else 0.0,
        math.log1p(max(0.0, now - s.last_payment) / DAY) if s.last_payment else 0.0,
        s.credit / avg_amount if avg_amount > 0 else 0.0,
    ))


def as_dict(x: array) -> dict[str, float]:  # type: ignore[type-arg]
    """River takes dicts; the core keeps compact arrays."""
    return dict(zip(FEATURE_NAMES, x, strict=True))
