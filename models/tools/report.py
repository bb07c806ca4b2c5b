"""The backtest's numbers: headline metrics per model, capture of late money, scores over
time and alert quality, from the records of a :class:`~models.tools.backtest.BacktestRun`.

ROC AUC, PR AUC, log loss, Brier, ECE and the reliability table come from
:mod:`models.metrics` (the definitions the worker's gauges and replay use; undefined is
NaN); what is specific to collections is here: the share of late money found in the
riskiest invoices, and alert lead times against ground truth. Pure: plain dicts out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from models import metrics
from models.config import DAY
from models.tools.backtest import InvoiceRecord
from models.tools.evaluation import alert_quality, first_alert_times

# --- headline metrics -----------------------------------------------------------------------


def capture(y: Sequence[int], p: Sequence[float], amount: Sequence[int],
            share: float) -> float:
    """Share of late money found in the top ``share`` of invoices by score.

    The top is ``round(n x share)`` invoices (at least one), highest score first; ties
    keep input order. NaN when nothing was late.

    >>> capture([1, 0, 1, 0], [0.9, 0.8, 0.1, 0.2], [100, 50, 300, 10], 0.5)
    0.25
    """
    late_money = sum(a for a, label in zip(amount, y, strict=True) if label)
    if not late_money:
        return math.nan
    k = max(1, int(len(y) * share + 0.5))
    top = sorted(range(len(y)), key=lambda i: -p[i])[:k]
    return sum(amount[i] for i in top if y[i]) / late_money


def score_metrics(y: Sequence[int], p: Sequence[float], amount: Sequence[int],
                  ) -> dict[str, Any]:
    """Every headline metric for one set of predictions (same keys for every model)."""
    cal = metrics.calibration(y, p)
    return {
        "n": len(y), "late": sum(y), "late_rate": sum(y) / len(y) if y else math.nan,
        "roc_auc": metrics.roc_auc(y, p), "pr_auc": metrics.average_precision(y, p),
        "log_loss": metrics.log_loss(y, p), "brier": metrics.brier(y, p), "ece": cal.ece(),
        "reliability": cal.table(),
        "capture_top10": capture(y, p, amount, 0.1),
        "capture_top20": capture(y, p, amount, 0.2),
    }


def record_metrics(records: Sequence[InvoiceRecord],
                   p: Sequence[float] | None = None) -> dict[str, Any]:
    """:func:`score_metrics` of labelled records, with their own p at issue or ``p``."""
    y = [r.y or 0 for r in records]
    scores = [r.p for r in records] if p is None else list(p)
    return score_metrics(y, scores, [r.amount for r in records])


# --- over time and alerts ---------------------------------------------------------------------


def month_of(ts: float) -> str:
    """``YYYY-MM`` of an event time (UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted, non-empty list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def scores_by_month(records: Iterable[InvoiceRecord]) -> list[dict[str, Any]]:
    """Per month of issue: how many invoices, mean and quantiles of p at issue, late rate."""
    months: dict[str, list[InvoiceRecord]] = {}
    for r in records:
        months.setdefault(month_of(r.issued), []).append(r)
    out = []
    for month in sorted(months):
        recs = months[month]
        ps = sorted(r.p for r in recs)
        labelled = [r.y for r in recs if r.y is not None]
        out.append({"month": month, "n": len(ps), "mean": sum(ps) / len(ps),
                    "p10": quantile(ps, 0.1), "p50": quantile(ps, 0.5),
                    "p90": quantile(ps, 0.9), "labelled": len(labelled),
                    "late_rate": sum(labelled) / len(labelled) if labelled else None})
    return out


def lead_times(first_alerts: Mapping[str, float], truth: Mapping[str, float | None],
               ) -> list[float]:
    """Days from each hit's first high-risk alert to its first 30+ days past due."""
    return sorted((t - first_alerts[cid]) / DAY for cid, t in truth.items()
                  if t is not None and cid in first_alerts and first_alerts[cid] < t)


def alert_report(alerts: Iterable[tuple[str, str, float]], truth: Mapping[str, float | None],
                 eval_from: float) -> dict[str, Any]:
    """Alert quality in the evaluation window, and over the whole stream as replay reports it.

    In the window, customers already 30+ days past due before ``eval_from`` are left out
    (nothing left to predict), and only alerts raised on/after ``eval_from`` count.
    """
    alerts = list(alerts)
    full = first_alert_times(alerts)
    known = {cid for cid, t in truth.items() if t is not None and t < eval_from}
    window_truth = {cid: t for cid, t in truth.items() if cid not in known}
    window = first_alert_times([a for a in alerts if a[2] >= eval_from and a[0] not in known])
    quality = alert_quality(window, window_truth).as_dict()
    quality["lead_days"] = lead_times(window, window_truth)
    quality["window"] = "eval"
    quality["full_stream"] = alert_quality(full, truth).as_dict()
    return quality
