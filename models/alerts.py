"""Alert policy: when a score change or an overdue invoice deserves a person's attention.

Three kinds: ``entered_high_risk`` (band rose into high or critical), ``risk_spike``
(p_late rose by ``spike_delta`` against its low within ``spike_window_days``) and
``high_risk_overdue`` (a high-risk customer let an invoice pass its due date).
Band hysteresis stops flapping; a per-kind cool-down stops repeats. Every alert id
is a hash of customer, kind and trigger, so a redelivered trigger yields the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from models.config import DAY, ScoringConfig
from models.invoice import Invoice
from models.state import CustomerState
from schemas.records import BANDS, Reason

HIGH = 2


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What the policy decided; the processor turns it into an AlertRecord."""

    kind: str
    trigger: str
    message: str
    invoice_id: str | None = None


def alert_id(customer_id: str, kind: str, trigger: str) -> str:
    """Deterministic: the same trigger always gives the same id.

    >>> alert_id("c1", "risk_spike", "ev-9") == alert_id("c1", "risk_spike", "ev-9")
    True
    """
    key = f"{customer_id}|{kind}|{trigger}".encode()
    return hashlib.blake2b(key, digest_size=10).hexdigest()


def track_p(state: CustomerState, p: float, now: float, cfg: ScoringConfig) -> float:
    """Record ``p`` and return the lowest p_late within the spike window before it.

    Keeps a monotonic queue (increasing p) of (time, p) pairs, at most 4, flattened in a
    tuple (``state.p_hist``), so the memory stays small.
    """
    hist = state.p_hist
    if not hist:
        state.p_hist = (now, p)
        return p
    start = now - cfg.spike_window_days * DAY
    if len(hist) == 2:  # the usual case, the loop below unrolled
        t0, q0 = hist
        if t0 < start:
            state.p_hist = (now, p)
            return p
        state.p_hist = (now, p) if q0 >= p else (t0, q0, now, p)
        return q0
    kept = [i for i in range(0, len(hist), 2) if hist[i] >= start]
    low = min([hist[i + 1] for i in kept], default=p)
    while kept and hist[kept[-1] + 1] >= p:
        kept.pop()
    if len(kept) >= 4:  # keep the head (the window's minimum) and the newest entries
        kept = [kept[0], *kept[-2:]]
    flat: list[float] = []
    for i in kept:
        flat += hist[i:i + 2]
    flat += (now, p)
    state.p_hist = tuple(flat)
    return low


def _cooling(state: CustomerState, kind: str, now: float, cfg: ScoringConfig) -> bool:
    last = state.last_alert(kind)
    return last is not None and now - last < cfg.alert_cooldown_days * DAY


def decide(state: CustomerState, *, prev_band: int, band: int, p: float, low: float,
           now: float, trigger: str, went_overdue: Sequence[Invoice],
           cfg: ScoringConfig, reasons: Sequence[Reason] = ()) -> list[AlertDraft]:
    """The alerts this change raises, cool-downs applied (and recorded in ``state``)."""
    drafts: list[AlertDraft] = []
    if band >= HIGH and band > prev_band:
        why = "; ".join(r.text for r in reasons[:2])
        drafts.append(AlertDraft("entered_high_risk", trigger,
                                 f"moved from {BANDS[prev_band]} to {BANDS[band]} risk"
                                 + (f": {why}" if why else "")))
    if p - low >= cfg.spike_delta:
        drafts.append(AlertDraft("risk_spike", trigger,
                                 f"p_late rose from {low:.2f} to {p:.2f} within "
                                 f"{cfg.spike_window_days:.0f} days"))
    if band >= HIGH:
        for inv in went_overdue:
            if inv.disputed or inv.open <= 0:
                continue
            drafts.append(AlertDraft("high_risk_overdue", f"{inv.invoice_id}:overdue",
                                     f"{BANDS[band]}-risk customer let invoice "
                                     f"{inv.invoice_id} go past due", inv.invoice_id))
            break
    kept = [d for d in drafts if not _cooling(state, d.kind, now, cfg)]
    for d in kept:
        state.note_alert(d.kind, now)
    return kept
