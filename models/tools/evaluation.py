"""Alert quality against the simulator's ground truth: precision, recall, lead time.

A customer *truly* deteriorates when the ground truth gives it a ``first_30dpd_at``
(an invoice 30+ days past due). An alert *hits* when the customer's first high-risk
alert (``entered_high_risk``) comes before that moment; lead time is the gap in days.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.config import DAY


@dataclass(frozen=True, slots=True)
class AlertQuality:
    positives: int
    alerted: int
    hits: int
    precision: float
    recall: float
    median_lead_days: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"positives": self.positives, "alerted": self.alerted, "hits": self.hits,
                "precision": self.precision, "recall": self.recall,
                "median_lead_days": self.median_lead_days}


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def truth_times(truth: Mapping[str, Any]) -> dict[str, float | None]:
    """customer_id -> first 30+ DPD time (None if never), from a ground-truth document."""
    customers = truth.get("customers", truth)
    return {cid: _ts(info.get("first_30dpd_at")) for cid, info in customers.items()}


def alert_quality(first_alerts: Mapping[str, float], truth: Mapping[str, float | None],
                  ) -> AlertQuality:
    """Score first high-risk alert times against true first-30DPD times.

    >>> q = alert_quality({"a": 0.0, "b": 0.0}, {"a": 10 * 86400.0, "b": None, "c": 5.0})
    >>> (q.hits, q.precision, q.recall, q.median_lead_days)
    (1, 0.5, 0.5, 10.0)
    """
    positives = {cid for cid, t in truth.items() if t is not None}
    leads: list[float] = []
    for cid, alerted_at in first_alerts.items():
        due = truth.get(cid)
        if due is not None and alerted_at < due:
            leads.append((due - alerted_at) / DAY)
    alerted = len(first_alerts)
    return AlertQuality(
        positives=len(positives), alerted=alerted, hits=len(leads),
        precision=len(leads) / alerted if alerted else 0.0,
        recall=len(leads) / len(positives) if positives else 0.0,
        median_lead_days=statistics.median(leads) if leads else None,
    )


def first_alert_times(alerts: Iterable[tuple[str, str, float]],
                      kinds: tuple[str, ...] = ("entered_high_risk",)) -> dict[str, float]:
    """customer_id -> time of its first alert of the given kinds, from (customer, kind, time)."""
    first: dict[str, float] = {}
    for cid, kind, at in alerts:
        if kind in kinds and (cid not in first or at < first[cid]):
            first[cid] = at
    return first
