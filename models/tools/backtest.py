"""Backtest: a history of events through the live engine, scored the way production scores.

The question a team asks before going live is "had arscore been running, how good
would its predictions at invoice issue have been?". So the events go through the
same :class:`~models.engine.Engine` (event-time order, deadlines, delayed labels)
and the same model, which predicts at issue and learns when each label resolves;
nothing is re-fitted with hindsight. What this module adds is bookkeeping and
arithmetic:

- :class:`BacktestRun` collects, per invoice, the prediction made at issue, the
  feature snapshot and the label (when it resolved), plus the alerts raised;
- :func:`evaluation_split` picks the invoices issued on/after the evaluation date
  whose label had to be known by the end of the stream (so the late ones, which
  resolve last, are not under-counted), and the labels resolved before that date
  (what a batch baseline could have trained on);
- exact metrics on plain lists: rank-based ROC AUC, average precision, log loss,
  Brier, a 10-bin reliability table with ECE, capture of late money;
- :func:`audit_snapshots`, the leakage guard: every stored snapshot must equal the
  features recomputed from the customer's state as of the invoice's issue.

Pure: no files, no clock, no printing.
"""

from __future__ import annotations

import copy
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models import state as st
from models.config import DAY, ScoringConfig
from models.engine import TYPE_ORDER, Engine
from models.features import FEATURE_NAMES, features
from models.model import OnlineModel
from models.money import to_units
from models.processor import OK, Step
from models.state import CustomerState, id_hash
from models.tools.evaluation import alert_quality, first_alert_times
from schemas.events import Event, InvoiceIssued

Key = tuple[str, str]
"""(customer_id, invoice_id): invoice ids need only be unique per customer."""
BINS = 10


# --- collecting predictions ---------------------------------------------------------------


@dataclass(slots=True)
class InvoiceRecord:
    """One invoice as the backtest saw it: the prediction at issue and, once known, its label."""

    customer_id: str
    invoice_id: str
    issued: float
    amount: int
    p: float
    due: float | None = None
    y: int | None = None
    resolved_at: float | None = None
    x: array | None = None  # type: ignore[type-arg]


@dataclass(slots=True)
class BacktestData:
    """Everything a run produced that the metrics need."""

    records: list[InvoiceRecord]
    alerts: list[tuple[str, str, float]]
    end: float
    """Stream time at the end (the last event time)."""
    outcomes: Counter[str]
    model: OnlineModel
    horizon: float
    """Seconds after due at which an open invoice resolves late (grace + label lateness)."""


class BacktestRun:
    """Feed decoded events; the engine runs them exactly as the worker would."""

    def __init__(self, cfg: ScoringConfig, model: OnlineModel, *,
                 reorder_seconds: float = 0.0, source: str = "file") -> None:
        self.cfg = cfg
        self.store: dict[str, CustomerState] = {}
        self.engine = Engine(cfg, model, self.store, sources=(source,),
                             reorder_seconds=reorder_seconds)
        self.source = source
        self.records: dict[Key, InvoiceRecord] = {}
        self.alerts: list[tuple[str, str, float]] = []
        self.outcomes: Counter[str] = Counter()

    def submit(self, event: Event, offset: int = -1) -> list[Step]:
        """Submit one event; returns the steps it released (already recorded)."""
        steps = self.engine.submit(event, self.source, offset)
        self._take(steps)
        return steps

    def finish(self) -> BacktestData:
        """End of input: release everything; invoices still unlabelled keep ``y`` None."""
        self._take(self.engine.flush())
        horizon = (self.cfg.grace_days + self.cfg.label_lateness_days) * DAY
        return BacktestData(list(self.records.values()), self.alerts,
                            self.engine.stream_time, self.outcomes, self.engine.model, horizon)

    def _take(self, steps: list[Step]) -> None:
        for step in steps:
            if step.event is not None:
                self.outcomes[step.status] += 1
            for label in step.labels:
                self._label(step.customer_id, label)
            if step.status == OK and isinstance(step.event, InvoiceIssued):
                self._issued(step.customer_id, step.event)
            self.alerts.extend((a.customer_id, a.kind, step.at) for a in step.alerts)

    def _label(self, cid: str, label: st.Label) -> None:
        key = (cid, label.invoice_id)
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = InvoiceRecord(cid, label.invoice_id, label.issued,
                                                    label.amount, label.p_at_issue)
        rec.p, rec.y, rec.x = label.p_at_issue, label.y, label.x
        rec.resolved_at = label.resolved_at

    def _issued(self, cid: str, event: InvoiceIssued) -> None:
        key = (cid, event.invoice_id)
        rec = self.records.get(key)
        if rec is None:
            inv = self.store[cid].invoices.get(event.invoice_id)
            if inv is None:  # closed at issue without a label: nothing to score
                return
            rec = self.records[key] = InvoiceRecord(cid, inv.invoice_id, inv.issued,
                                                    inv.amount, inv.p_late)
        rec.due = event.due_at.timestamp()


# --- the evaluation split -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Split:
    """Who is trained on and who is scored, for the online model and the baselines alike."""

    train: list[InvoiceRecord]
    """Labels resolved before the evaluation date (with snapshots): a batch model's history."""
    test: list[InvoiceRecord]
    """Invoices issued on/after the evaluation date whose labels had to be known by the end."""
    issued_after: int
    """All invoices issued on/after the evaluation date (test + censored)."""
    censored: int
    """Issued on/after the date but too close to the end for the label to be certain."""


def evaluation_split(data: BacktestData, eval_from: float) -> Split:
    """Split the records at ``eval_from`` without letting the end of the stream bias the test.

    An invoice issued near the end resolves early only if paid on time; keeping only the
    invoices whose due + grace + lateness passed before the end keeps late ones in.
    Disputed invoices that never closed stay unlabelled and are left out (counted).
    """
    cut = data.end - data.horizon
    train = [r for r in data.records
             if r.y is not None and r.x is not None and r.resolved_at is not None
             and r.resolved_at < eval_from]
    after = [r for r in data.records if r.issued >= eval_from]
    test = [r for r in after if r.y is not None and (r.due is None or r.due <= cut)]
    return Split(train, test, len(after), len(after) - len(test))


# --- metrics on plain lists -----------------------------------------------------------------


def _midranks(p: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    ranks = [0.0] * len(p)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and p[order[j + 1]] == p[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float | None:
    """Exact ROC AUC (Mann-Whitney U with ties counted half); None without both classes.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    pos = sum(y)
    neg = len(y) - pos
    if not pos or not neg:
        return None
    ranks = _midranks(p)
    rank_sum = sum(r for r, label in zip(ranks, y, strict=True) if label)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _descending_groups(y: Sequence[int], p: Sequence[float]) -> list[tuple[int, int]]:
    """(positives, count) per distinct score, from the highest score down."""
    groups: dict[float, list[int]] = {}
    for label, score in zip(y, p, strict=True):
        g = groups.setdefault(score, [0, 0])
        g[0] += label
        g[1] += 1
    return [(g[0], g[1]) for _, g in sorted(groups.items(), reverse=True)]


def average_precision(y: Sequence[int], p: Sequence[float]) -> float | None:
    """PR AUC as average precision: sum over thresholds of (recall gain) x precision.

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    pos = sum(y)
    if not pos:
        return None
    tp = seen = 0
    ap = 0.0
    for g_pos, g_n in _descending_groups(y, p):
        tp += g_pos
        seen += g_n
        ap += (g_pos / pos) * (tp / seen)
    return ap


def roc_points(y: Sequence[int], p: Sequence[float]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    pos = sum(y)
    neg = len(y) - pos
    points = [(0.0, 0.0)]
    if not pos or not neg:
        return points
    tp = fp = 0
    for g_pos, g_n in _descending_groups(y, p):
        tp += g_pos
        fp += g_n - g_pos
        points.append((fp / neg, tp / pos))
    return points


def log_loss(y: Sequence[int], p: Sequence[float], eps: float = 1e-15) -> float:
    """Mean negative log-likelihood, probabilities clipped to [eps, 1 - eps]."""
    total = 0.0
    for label, score in zip(y, p, strict=True):
        q = min(max(score, eps), 1.0 - eps)
        total -= math.log(q if label else 1.0 - q)
    return total / len(y) if y else 0.0


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    """Mean squared error of the probability."""
    return sum((s - t) ** 2 for t, s in zip(y, p, strict=True)) / len(y) if y else 0.0


def reliability(y: Sequence[int], p: Sequence[float], bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of p: count, mean predicted and observed late rate (None if empty)."""
    n = [0] * bins
    sp = [0.0] * bins
    sy = [0] * bins
    for label, score in zip(y, p, strict=True):
        i = min(max(int(score * bins), 0), bins - 1)
        n[i] += 1
        sp[i] += score
        sy[i] += label
    return [{"lo": i / bins, "hi": (i + 1) / bins, "n": n[i],
             "mean_p": sp[i] / n[i] if n[i] else None,
             "observed": sy[i] / n[i] if n[i] else None} for i in range(bins)]


def ece(table: Sequence[Mapping[str, Any]]) -> float:
    """Expected calibration error: count-weighted |mean predicted - observed| over the bins."""
    total = sum(int(row["n"]) for row in table)
    if not total:
        return 0.0
    gap = sum(float(row["n"]) * abs(float(row["mean_p"]) - float(row["observed"]))
              for row in table if row["n"])
    return gap / total


def capture(y: Sequence[int], p: Sequence[float], amount: Sequence[int],
            share: float) -> float | None:
    """Share of late money found in the top ``share`` of invoices by score.

    The top is ``round(n x share)`` invoices (at least one), highest score first; ties
    keep input order. None when nothing was late.

    >>> capture([1, 0, 1, 0], [0.9, 0.8, 0.1, 0.2], [100, 50, 300, 10], 0.5)
    0.25
    """
    late_money = sum(a for a, label in zip(amount, y, strict=True) if label)
    if not late_money:
        return None
    k = max(1, int(len(y) * share + 0.5))
    top = sorted(range(len(y)), key=lambda i: -p[i])[:k]
    return sum(amount[i] for i in top if y[i]) / late_money


def score_metrics(y: Sequence[int], p: Sequence[float], amount: Sequence[int],
                  ) -> dict[str, Any]:
    """Every headline metric for one set of predictions (same keys for every model)."""
    table = reliability(y, p)
    return {
        "n": len(y), "late": sum(y), "late_rate": sum(y) / len(y) if y else 0.0,
        "roc_auc": roc_auc(y, p), "pr_auc": average_precision(y, p),
        "log_loss": log_loss(y, p), "brier": brier(y, p), "ece": ece(table),
        "reliability": table,
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


# --- the leakage guard --------------------------------------------------------------------------


@dataclass(slots=True)
class SnapshotAudit:
    """Snapshots checked and those that differ from the features as of issue."""

    checked: int = 0
    mismatches: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def features_as_of_issue(before: CustomerState | None, event: InvoiceIssued,
                         cfg: ScoringConfig) -> array | None:  # type: ignore[type-arg]
    """The features an invoice must carry, from a copy of its customer's state before issue.

    Time is first brought to the issue (as the processor does), then the reference
    :func:`models.features.features` is applied: nothing after issue can reach it.
    None if the state would refuse the invoice.
    """
    s = copy.deepcopy(before) if before is not None else CustomerState(event.customer_id)
    at = event.at.timestamp()
    st.advance(s, at, cfg)
    try:
        st.touch(s, at, event.currency)
    except st.Rejected:
        return None
    return features(s, at, cfg, to_units(event.amount), (event.due_at.timestamp() - at) / DAY)


def _event_order(event: Event) -> tuple[float, int, str]:
    return event.at.timestamp(), TYPE_ORDER[event.type], event.event_id


def _differing(a: array, b: array) -> list[str]:  # type: ignore[type-arg]
    return [name for name, u, v in zip(FEATURE_NAMES, a, b, strict=True)
            if not (u == v or (math.isnan(u) and math.isnan(v)))]


def audit_snapshots(events: Iterable[Event], cfg: ScoringConfig, *,
                    model: OnlineModel | None = None, every: int = 1) -> SnapshotAudit:
    """Check that every learned (or still held) snapshot is the invoice's features at issue.

    The events run through a fresh engine in event-time order. Before an invoice is
    issued, its features are recomputed from a copy of the customer's state; after the
    run, each label's ``x`` (copied when it resolved, as learned) and each open
    invoice's ``x`` must equal them. A snapshot that changed after issue, or a feature
    function reading anything but the state at issue, shows up here. ``every`` > 1
    audits a stable sample of invoices (1 in ``every``).
    """
    model = model or OnlineModel(prior=cfg.prior_late_rate)
    store: dict[str, CustomerState] = {}
    engine = Engine(cfg, model, store, sources=("audit",))
    expected: dict[Key, array] = {}  # type: ignore[type-arg]
    stored: dict[Key, array] = {}  # type: ignore[type-arg]

    def take(steps: list[Step]) -> None:
        for step in steps:
            for label in step.labels:
                stored[(step.customer_id, label.invoice_id)] = array("d", label.x)

    for event in sorted(events, key=_event_order):
        if isinstance(event, InvoiceIssued) and id_hash(event.invoice_id) % every == 0:
            key = (event.customer_id, event.invoice_id)
            if key not in expected:
                x = features_as_of_issue(store.get(event.customer_id), event, cfg)
                if x is not None:
                    expected[key] = x
        take(engine.submit(event, "audit"))
    take(engine.flush())
    for cid, s in store.items():
        for inv in s.invoices.values():
            snapshot = inv.snapshot
            if snapshot is not None:
                stored[(cid, inv.invoice_id)] = snapshot
    audit = SnapshotAudit()
    for key, want in expected.items():
        got = stored.get(key)
        if got is None:
            continue
        audit.checked += 1
        diff = _differing(want, got)
        if diff:
            audit.mismatches.append((*key, diff))
    return audit
