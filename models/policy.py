"""The collections policy, each rule defined once: lateness, the label horizon, money at risk
and bands.

Every other module asks these functions; none restates them. Times are event-time epoch
seconds. Money is integer units; the scale (:data:`~models.money.UNIT` per major unit) and
its conversions are defined once, in :mod:`models.money`.

>>> cfg = ScoringConfig(grace_days=5, label_lateness_days=1)
>>> due = 0.0
>>> paid_late(due + 5 * DAY, due, cfg), paid_late(due + 5 * DAY + 1, due, cfg)
(False, True)
>>> label_deadline(due, cfg) / DAY
6.0
>>> grace = grace_seconds(cfg)
>>> at_risk_p(0.2, due, due + grace, grace), at_risk_p(0.2, due, due + grace + 1, grace)
(0.2, 1.0)
"""

from __future__ import annotations

from models.config import DAY, ScoringConfig
from schemas.records import BANDS

__all__ = ["BANDS", "OVERDUE_NOTICE_SECONDS", "at_risk_p", "band_for", "band_name",
           "grace_seconds", "label_deadline", "label_horizon", "next_band", "paid_late",
           "past_due", "priority_units"]

OVERDUE_NOTICE_SECONDS = 1.0
"""An open invoice is reported overdue (``invoice_overdue`` alert, once) this long after its
due date: the first whole second past it."""


# --- lateness and labels ----------------------------------------------------------------


def grace_seconds(cfg: ScoringConfig) -> float:
    """How long after its due date an invoice may be paid and still count as on time."""
    return cfg.grace_days * DAY


def paid_late(paid_at: float, due: float, cfg: ScoringConfig) -> bool:
    """The label of a paid invoice: late when fully paid more than ``grace_days`` after due."""
    return paid_at > due + cfg.grace_days * DAY


def label_horizon(cfg: ScoringConfig) -> float:
    """Seconds after its due date at which an invoice still open resolves as late.

    The grace period, plus ``label_lateness_days`` of patience for back-dated payments
    (bank value dates) that would still count.
    """
    return (cfg.grace_days + cfg.label_lateness_days) * DAY


def label_deadline(due: float, cfg: ScoringConfig) -> float:
    """When an undisputed invoice with money still open resolves as late."""
    return due + label_horizon(cfg)


def past_due(due: float, now: float) -> bool:
    """Whether an open invoice counts as overdue at ``now`` (aging, overdue amounts)."""
    return now > due


# --- money at risk ----------------------------------------------------------------------


def at_risk_p(p_late: float, due: float, now: float, grace: float) -> float:
    """The share of an open invoice's amount at risk: its p_late at issue, 1.0 once past
    due + grace (``grace`` from :func:`grace_seconds`)."""
    return 1.0 if now > due + grace else p_late


def priority_units(at_risk: float) -> int:
    """Money at risk as a priority: the sum of open x :func:`at_risk_p`, to whole cents
    (a ranking figure, not a ledger balance).

    >>> priority_units(123_456.7)  # 12.35 in major units (models.money.UNIT)
    123500
    """
    return round(at_risk / 100) * 100


# --- bands ------------------------------------------------------------------------------


def band_for(p: float, cfg: ScoringConfig) -> int:
    """Index of the band for ``p`` without hysteresis.

    >>> band_for(0.6, ScoringConfig()), BANDS[band_for(0.6, ScoringConfig())]
    (2, 'high')
    """
    band = 0
    for i, cut in enumerate(cfg.band_cutoffs):
        if p >= cut:
            band = i + 1
    return band


def next_band(previous: int, p: float, cfg: ScoringConfig) -> int:
    """Band with hysteresis: up as soon as a cut-off is reached, down only clearly below it.

    >>> cfg = ScoringConfig(band_hysteresis=0.05)
    >>> next_band(2, 0.48, cfg), next_band(2, 0.44, cfg), next_band(1, 0.5, cfg)
    (2, 1, 2)
    """
    raw = band_for(p, cfg)
    if raw >= previous:
        return raw
    band = previous
    while band > raw and p < cfg.band_cutoffs[band - 1] - cfg.band_hysteresis:
        band -= 1
    return band


def band_name(band: int) -> str:
    """The band's name in records and metrics (``low``, ``medium``, ``high``, ``critical``)."""
    return BANDS[band]
