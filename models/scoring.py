"""From state and model to what a collector sees: p_late, band, priority, reasons, treatment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.config import DAY, ScoringConfig
from models.features import FEATURE_NAMES, OpenBook
from models.money import to_str, to_units
from models.state import CustomerState
from schemas.records import BANDS, Reason

_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def next_band(previous: int, p: float, cfg: ScoringConfig) -> int:
    """Band with hysteresis: up as soon as a cut-off is reached, down only clearly below it.

    >>> cfg = ScoringConfig(band_hysteresis=0.05)
    >>> next_band(2, 0.48, cfg), next_band(2, 0.44, cfg), next_band(1, 0.5, cfg)
    (2, 1, 2)
    """
    raw = cfg.band_for(p)
    if raw >= previous:
        return raw
    band = previous
    while band > raw and p < cfg.band_cutoffs[band - 1] - cfg.band_hysteresis:
        band -= 1
    return band


def priority_units(state: CustomerState, now: float, cfg: ScoringConfig) -> int:
    """Money at risk: open amount x that invoice's p_late (1.0 once past due + grace)."""
    horizon = cfg.grace_days * DAY
    total = 0.0
    for inv in state.invoices.values():
        p = 1.0 if now > inv.due + horizon else inv.p_late
        total += inv.open * p
    return round(total / 100) * 100  # whole cents: a priority, not a ledger balance


def overdue_units(state: CustomerState, now: float) -> int:
    return sum(inv.open for inv in state.invoices.values() if now > inv.due)


def max_days_past_due(state: CustomerState, now: float) -> float:
    return max([(now - inv.due) / DAY for inv in state.invoices.values()] + [0.0])


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


def _explain(name: str, state: CustomerState, x: Sequence[float], now: float,
             book: OpenBook | None) -> str | None:
    """Plain words for one feature, from the state (never from model internals)."""
    s, v = state, x[_IDX[name]]
    if name == "late_ratio" or name == "history_log":
        if not s.n_labels:
            return "no payment history yet"
        return f"{s.n_late} of the last {s.n_labels} invoices paid late"
    if name in ("avg_days_late", "weighted_days_late", "ewma_days_late"):
        return f"{v:.0f} days late on average" if v >= 0.5 else None
    if name == "recent_days_late":
        return f"last invoices paid {v:.0f} days late on average" if v >= 0.5 else None
    if name == "lateness_trend":
        return f"paying {v:.0f} days later than before" if v >= 1 else None
    if name in ("overdue_share", "aging_1_30", "aging_31_60", "aging_61_90", "aging_90_plus",
                "max_days_past_due"):
        overdue = overdue_units(s, now) if book is None else book.overdue
        if not overdue:
            return None
        oldest = max_days_past_due(s, now) if book is None else book.max_dpd
        return f"{_money(overdue, s.currency)} overdue, oldest {oldest:.0f} days past due"
    if name in ("open_amount_log", "open_count_log"):
        total = s.open_units if book is None else book.open
        return f"{len(s.invoices)} open invoices totalling {_money(total, s.currency)}"
    if name == "partial_ratio":
        return f"settles {v:.0%} of invoices in several payments" if v > 0 else None
    if name in ("dispute_ratio", "open_disputed"):
        return f"{s.n_disputes} invoices disputed" if s.n_disputes else None
    if name == "days_since_payment_log" and s.last_payment:
        days = (now - s.last_payment) / DAY
        return f"no payment for {days:.0f} days" if days >= 7 else None  # recent: no reason
    if name == "terms_months":
        return f"long payment terms ({v * 30:.0f} days)" if v > 1.2 else None
    if name == "tenure_log":
        return "new customer" if v < 4.0 else None
    return None


def reasons(state: CustomerState, x: Sequence[float], now: float,
            contributions: Mapping[str, float] | Sequence[float] | None, cfg: ScoringConfig,
            limit: int = 3, book: OpenBook | None = None) -> tuple[Reason, ...]:
    """The top factors pushing this customer towards late payment, in plain words.

    Uses the model's per-feature contributions when it has them (a mapping by feature
    name, or a sequence ordered like FEATURE_NAMES, which is what the per-event path
    passes: no dict to build); otherwise (cold start, non-linear model) a fixed ranking
    of the risk signals in the state. Only positive contributions can be reasons, so
    only those are ranked. ``book`` is the open-invoice pass at ``now`` if the caller has it.
    """
    if contributions is None:
        contributions = {
            "late_ratio": x[_IDX["late_ratio"]] - cfg.prior_late_rate,
            "avg_days_late": x[_IDX["avg_days_late"]] / 10.0,
            "max_days_past_due": x[_IDX["max_days_past_due"]],
            "lateness_trend": x[_IDX["lateness_trend"]] / 10.0,
            "open_disputed": x[_IDX["open_disputed"]],
        }
    if isinstance(contributions, list) or not isinstance(contributions, Mapping):
        ranked = sorted([(-weight, name) for name, weight
                         in zip(FEATURE_NAMES, contributions, strict=True) if weight > 0])
    else:
        ranked = sorted([(-weight, name) for name, weight in contributions.items() if weight > 0])
    out: list[Reason] = []
    texts: set[str] = set()
    for negative, name in ranked[:2 * limit + 2]:
        if len(out) >= limit:
            break
        text = _explain(name, state, x, now, book)
        if text and text not in texts:
            texts.add(text)
            out.append(Reason(code=name, text=text, weight=round(-negative, 4)))
    if out:
        return tuple(out)
    if state.n_labels and not state.n_late:
        return (Reason("on_time", "pays on time", 0.0),)
    return ()


def band_name(band: int) -> str:
    return BANDS[band]


__all__ = ["band_name", "next_band", "priority_units", "reasons", "to_units", "treatment"]
