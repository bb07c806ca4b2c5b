"""From state and model to what a collector sees: p_late, band, priority, reasons, treatment."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from models.config import DAY, ScoringConfig
from models.features import FEATURE_NAMES, OpenBook
from models.money import to_str, to_units
from models.state import CustomerState
from schemas.records import Reason

_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def treatment(band: int, max_dpd: float, disputed_only: bool = False) -> str:
    """The suggested next action for a collector.

    >>> treatment(0, 0.0), treatment(1, 3.0), treatment(2, 0.0), treatment(3, 10.0), treatment(3, 75.0)
    ('none', 'friendly_reminder', 'call', 'escalate', 'credit_hold')
    """
    if disputed_only:
        return "none"
    if band >= 3:
        return "credit_hold" if max_dpd > 60 else "escalate"
    if band == 2:
        return "call"
    if band == 1 or max_dpd > 0:
        return "friendly_reminder"
    return "none"


def _money(units: float, currency: str | None) -> str:
    text = to_str(int(units))
    return f"{text} {currency}" if currency else text


# --- reasons: one plain-words explainer per feature ----------------------------------------
#
# Each takes (state, the feature's value, now, the open-invoice pass) and returns the text,
# or None when the feature is not worth saying. They read the state, never model internals.

Explainer = Callable[[CustomerState, float, float, OpenBook], str | None]


def _history(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    if not s.n_labels:
        return "no payment history yet"
    return f"{s.n_late} of the last {s.n_labels} invoices paid late"


def _days_late(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"{v:.0f} days late on average" if v >= 0.5 else None


def _recent(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"last invoices paid {v:.0f} days late on average" if v >= 0.5 else None


def _trend(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"paying {v:.0f} days later than before" if v >= 1 else None


def _overdue(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    if not book.overdue:
        return None
    return (f"{_money(book.overdue, s.currency)} overdue, oldest {book.max_dpd:.0f} days "
            "past due")


def _open(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"{len(s.invoices)} open invoices totalling {_money(book.open, s.currency)}"


def _partial(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"settles {v:.0%} of invoices in several payments" if v > 0 else None


def _disputes(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"{s.n_disputes} invoices disputed" if s.n_disputes else None


def _since_payment(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    if not s.last_payment:
        return None
    days = (now - s.last_payment) / DAY
    return f"no payment for {days:.0f} days" if days >= 7 else None  # recent: no reason


def _terms(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return f"long payment terms ({v * 30:.0f} days)" if v > 1.2 else None


def _tenure(s: CustomerState, v: float, now: float, book: OpenBook) -> str | None:
    return "new customer" if v < 4.0 else None


EXPLAINERS: dict[str, Explainer] = {
    "history_log": _history, "late_ratio": _history,
    "avg_days_late": _days_late, "weighted_days_late": _days_late, "ewma_days_late": _days_late,
    "recent_days_late": _recent,
    "lateness_trend": _trend,
    **dict.fromkeys(("overdue_share", "aging_1_30", "aging_31_60", "aging_61_90",
                     "aging_90_plus", "max_days_past_due"), _overdue),
    "open_amount_log": _open, "open_count_log": _open,
    "partial_ratio": _partial,
    "dispute_ratio": _disputes, "open_disputed": _disputes,
    "days_since_payment_log": _since_payment,
    "terms_months": _terms,
    "tenure_log": _tenure,
}
"""Features with no entry (current aging, size, credit, days to pay) are never a reason."""

_EXPLAIN_BY_INDEX: tuple[Explainer | None, ...] = tuple(EXPLAINERS.get(name)
                                                         for name in FEATURE_NAMES)
_BY_NAME = tuple(sorted(range(len(FEATURE_NAMES)), key=FEATURE_NAMES.__getitem__))
"""Feature indices in name order: a stable sort by weight then breaks ties by name."""


def reasons(state: CustomerState, x: Sequence[float], now: float,
            contributions: Mapping[str, float] | Sequence[float] | None, cfg: ScoringConfig,
            limit: int = 3, book: OpenBook | None = None) -> tuple[Reason, ...]:
    """The top factors pushing this customer towards late payment, in plain words.

    Uses the model's per-feature contributions when it has them (a mapping by feature
    name, or a sequence ordered like FEATURE_NAMES, which is what the per-event path
    passes: no dict to build); otherwise (cold start, non-linear model) a fixed ranking
    of the risk signals in the state. Only positive contributions can be reasons, so
    only those are ranked, largest first, ties in name order. ``book`` is the
    open-invoice pass at ``now`` if the caller has it.
    """
    if contributions is None:
        contributions = {
            "late_ratio": x[_IDX["late_ratio"]] - cfg.prior_late_rate,
            "avg_days_late": x[_IDX["avg_days_late"]] / 10.0,
            "max_days_past_due": x[_IDX["max_days_past_due"]],
            "lateness_trend": x[_IDX["lateness_trend"]] / 10.0,
            "open_disputed": x[_IDX["open_disputed"]],
        }
    if isinstance(contributions, Mapping):
        weights = [contributions.get(name, 0.0) for name in FEATURE_NAMES]
    else:
        weights = list(contributions)
    ranked = [i for i in _BY_NAME if weights[i] > 0]  # NaN is not > 0: never a reason
    ranked.sort(key=weights.__getitem__, reverse=True)  # stable: ties stay in name order
    if book is None:
        book = OpenBook(state, now, 0.0)  # max_dpd, overdue and open do not use the grace
    out: list[Reason] = []
    texts: set[str] = set()
    for i in ranked[:2 * limit + 2]:
        if len(out) >= limit:
            break
        explainer = _EXPLAIN_BY_INDEX[i]
        text = explainer(state, x[i], now, book) if explainer is not None else None
        if text and text not in texts:
            texts.add(text)
            out.append(Reason(FEATURE_NAMES[i], text, round(weights[i], 4)))
    if out:
        return tuple(out)
    if state.n_labels and not state.n_late:
        return (Reason("on_time", "pays on time", 0.0),)
    return ()


__all__ = ["reasons", "to_units", "treatment"]
