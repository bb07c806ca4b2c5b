"""Model-quality metrics: one definition of each, for the worker, replay and backtest.

Two forms of the same metrics live here:

- **on lists** (exact, for windows and evaluation sets): :func:`roc_auc`,
  :func:`average_precision`, :func:`roc_points`, :func:`log_loss`, :func:`brier`,
  :func:`calibration_gap` and the reliability table (:func:`calibration`,
  :func:`reliability`, :func:`ece`);
- **streaming** (O(1) per label, picklable, for progressive validation over every
  label a model ever saw): :class:`BinnedAUC`, :class:`Calibration` (which also builds
  the reliability table of a list), :class:`Progressive`, and :func:`merged_metrics`
  to combine the progressive metrics of one model per partition.

Conventions, the same everywhere:

- **Argument order** ``(y, p)``: the label first (1 = late, 0 = on time), then the
  predicted P(late), as scikit-learn orders its metrics and River its ``update(y_true,
  y_pred)``: ``roc_auc(y, p)`` on lists, ``update(y, p)`` for the streaming estimators.
- **Undefined is NaN.** A metric with nothing to measure returns ``math.nan``, never a
  made-up number: any metric of no labels, ROC AUC with one class only, average
  precision with no positive. NaN is a float, so it goes to a Prometheus gauge as it is
  (Grafana shows a gap), ``schemas.codec.dumps`` writes it as ``null``, and reports
  print it as ``-``.
- Probabilities are clipped to ``[1e-15, 1 - 1e-15]`` for the log loss (as River and
  scikit-learn do), so a confident mistake costs a large but finite amount.
- Reliability bins are equal-width over [0, 1] (:func:`bin_of`; p = 1.0 falls in the
  last bin), 10 of them unless told otherwise.

>>> y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
>>> roc_auc(y, p), round(average_precision(y, p), 4), round(brier(y, p), 4)
(0.75, 0.8333, 0.1581)
>>> math.isnan(roc_auc([1, 1], [0.2, 0.3])), math.isnan(log_loss([], []))
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from river import metrics as river_metrics

BINS = 10
"""Bins of the reliability table."""
AUC_BINS = 1000
"""Bins of the streaming :class:`BinnedAUC`."""
CLIP = 1e-15
"""Probabilities are clipped to [CLIP, 1 - CLIP] for the log loss."""


def bin_of(p: float, bins: int) -> int:
    """Index of the equal-width bin of [0, 1] holding ``p`` (1.0 falls in the last bin).

    >>> bin_of(0.0, 10), bin_of(0.25, 10), bin_of(1.0, 10)
    (0, 2, 9)
    """
    return min(max(int(p * bins), 0), bins - 1)


# --- on lists -----------------------------------------------------------------------------


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


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """Exact ROC AUC by ranking (Mann-Whitney U, ties counted half); NaN without both classes.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    >>> math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    True
    """
    pos = sum(1 for label in y if label)
    neg = len(y) - pos
    if not pos or not neg:
        return math.nan
    ranks = _midranks(p)
    rank_sum = sum(r for r, label in zip(ranks, y, strict=True) if label)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _descending_groups(y: Sequence[int], p: Sequence[float]) -> list[tuple[int, int]]:
    """(positives, count) per distinct score, from the highest score down."""
    groups: dict[float, list[int]] = {}
    for label, score in zip(y, p, strict=True):
        g = groups.setdefault(score, [0, 0])
        g[0] += 1 if label else 0
        g[1] += 1
    return [(g[0], g[1]) for _, g in sorted(groups.items(), reverse=True)]


def average_precision(y: Sequence[int], p: Sequence[float]) -> float:
    """PR AUC as average precision: sum over thresholds of (recall gain) x precision.

    NaN when no label is positive.

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    pos = sum(1 for label in y if label)
    if not pos:
        return math.nan
    tp = seen = 0
    ap = 0.0
    for g_pos, g_n in _descending_groups(y, p):
        tp += g_pos
        seen += g_n
        ap += (g_pos / pos) * (tp / seen)
    return ap


def roc_points(y: Sequence[int], p: Sequence[float]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0).

    Only (0, 0) without both classes.

    >>> roc_points([0, 1], [0.2, 0.9])
    [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
    """
    pos = sum(1 for label in y if label)
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


def log_loss(y: Sequence[int], p: Sequence[float], clip: float = CLIP) -> float:
    """Mean negative log-likelihood, probabilities clipped to [clip, 1 - clip]; NaN if empty.

    >>> round(log_loss([1, 0], [0.8, 0.4]), 4)  # -(ln 0.8 + ln 0.6) / 2
    0.367
    """
    if not y:
        return math.nan
    total = 0.0
    for label, score in zip(y, p, strict=True):
        q = min(max(score, clip), 1.0 - clip)
        total -= math.log(q) if label else math.log(1.0 - q)
    return total / len(y)


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    """Mean squared error of the probability; NaN if empty.

    >>> round(brier([1, 0], [0.8, 0.4]), 4)  # (0.2² + 0.4²) / 2
    0.1
    """
    if not y:
        return math.nan
    return sum((s - t) ** 2 for t, s in zip(y, p, strict=True)) / len(y)


def calibration_gap(y: Sequence[int], p: Sequence[float]) -> float:
    """Mean predicted minus observed late rate (> 0: over-predicts lateness); NaN if empty.

    >>> round(calibration_gap([0, 1], [0.3, 0.9]), 4)
    0.1
    """
    if not y:
        return math.nan
    return (sum(p) - sum(y)) / len(y)


def calibration(y: Sequence[int], p: Sequence[float], bins: int = BINS) -> Calibration:
    """The reliability bins of a list (see :class:`Calibration`)."""
    cal = Calibration.with_bins(bins)
    for label, score in zip(y, p, strict=True):
        cal.update(label, score)
    return cal


def reliability(y: Sequence[int], p: Sequence[float], bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of p: count, mean predicted, observed late rate (None if empty).

    >>> [row["n"] for row in reliability([1, 0, 1], [0.05, 0.15, 1.0], bins=4)]
    [2, 0, 0, 1]
    """
    return calibration(y, p, bins).table()


def ece(y: Sequence[int], p: Sequence[float], bins: int = BINS) -> float:
    """Expected calibration error over equal-width bins; NaN if empty.

    >>> round(ece([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3]), 4)  # (0.1 + 0.1 + 0.2 + 0.3) / 4
    0.175
    """
    return calibration(y, p, bins).ece()


# --- streaming ----------------------------------------------------------------------------


@dataclass
class Calibration:
    """Reliability bins: per equal-width bin of predicted p, how many, sum of p, how many late.

    >>> cal = Calibration()
    >>> for p, y in [(0.15, 0), (0.12, 1), (0.95, 1)]:
    ...     cal.update(y, p)
    >>> round(cal.ece(), 4)  # (|0.27 - 1| + |0.95 - 1|) / 3
    0.26
    >>> cal.table()[1]["n"], cal.table()[1]["observed"]
    (2, 0.5)
    """

    n: list[int] = field(default_factory=lambda: [0] * BINS)
    sum_p: list[float] = field(default_factory=lambda: [0.0] * BINS)
    sum_y: list[int] = field(default_factory=lambda: [0] * BINS)

    @classmethod
    def with_bins(cls, bins: int) -> Calibration:
        return cls([0] * bins, [0.0] * bins, [0] * bins)

    @property
    def bins(self) -> int:
        return len(self.n)

    def update(self, y: int, p: float) -> None:
        i = bin_of(p, len(self.n))
        self.n[i] += 1
        self.sum_p[i] += p
        self.sum_y[i] += y

    def ece(self) -> float:
        """Expected calibration error: sample-weighted |mean predicted - observed|; NaN if empty."""
        total = sum(self.n)
        if not total:
            return math.nan
        return sum(abs(sp - sy) for sp, sy in zip(self.sum_p, self.sum_y, strict=True)) / total

    def table(self) -> list[dict[str, Any]]:
        """Per bin: ``lo``, ``hi``, ``n``, ``mean_p`` and ``observed`` (None for an empty bin)."""
        bins = len(self.n)
        return [{"lo": i / bins, "hi": (i + 1) / bins, "n": n,
                 "mean_p": sp / n if n else None, "observed": sy / n if n else None}
                for i, (n, sp, sy) in enumerate(zip(self.n, self.sum_p, self.sum_y, strict=True))]


@dataclass
class BinnedAUC:
    """ROC AUC from per-class histograms of p over 1,000 bins: O(1) per update.

    Exact up to ties inside a bin (counted as half), which is finer than River's
    threshold-based ROCAUC at a fraction of its per-update cost. NaN without both classes.

    >>> auc = BinnedAUC()
    >>> for p, y in [(0.9, 1), (0.8, 1), (0.3, 0), (0.85, 0)]:
    ...     auc.update(y, p)
    >>> auc.get()
    0.75
    """

    pos: list[int] = field(default_factory=lambda: [0] * AUC_BINS)
    neg: list[int] = field(default_factory=lambda: [0] * AUC_BINS)

    def update(self, y: int, p: float) -> None:
        i = bin_of(p, AUC_BINS)
        if y:
            self.pos[i] += 1
        else:
            self.neg[i] += 1

    def get(self) -> float:
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return math.nan
        below = 0
        wins = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            wins += pos * (below + 0.5 * neg)
            below += neg
        return wins / (n_pos * n_neg)


@dataclass
class Progressive:
    """Progressive-validation metrics over every resolved label (each scored before it trains).

    >>> pv = Progressive()
    >>> math.isnan(pv.summary()["roc_auc"])  # no labels yet: nothing to measure
    True
    >>> for p, y in [(0.9, 1), (0.2, 0), (0.6, 0)]:
    ...     pv.update(y, p)
    >>> s = pv.summary()
    >>> s["labels"], s["roc_auc"], round(s["brier"], 4)
    (3.0, 1.0, 0.1367)
    """

    auc: BinnedAUC = field(default_factory=BinnedAUC)
    logloss: Any = field(default_factory=river_metrics.LogLoss)
    brier_sum: float = 0.0
    n: int = 0
    n_late: int = 0
    calibration: Calibration = field(default_factory=Calibration)

    def update(self, y: int, p: float) -> None:
        self.auc.update(y, p)
        self.logloss.update(bool(y), {True: p, False: 1.0 - p})
        self.brier_sum += (p - y) ** 2
        self.n += 1
        self.n_late += y
        self.calibration.update(y, p)

    def summary(self) -> dict[str, float]:
        """``labels``, ``late_rate``, ``roc_auc``, ``log_loss``, ``brier``, ``ece`` (NaN if no labels)."""
        n = self.n
        return {
            "labels": float(n),
            "late_rate": self.n_late / n if n else math.nan,
            "roc_auc": self.auc.get(),
            "log_loss": float(self.logloss.get()) if n else math.nan,
            "brier": self.brier_sum / n if n else math.nan,
            "ece": self.calibration.ece(),
        }


class Validated(Protocol):
    """Anything with progressive metrics (an :class:`~models.model.OnlineModel`)."""

    progressive: Progressive


def merged_metrics(models: Sequence[Validated]) -> dict[str, float]:
    """Progressive metrics of one model, or their label-weighted mean over partition models.

    A partition's metric counts only where it is defined (not NaN): a partition without
    labels adds nothing, and one whose labels are all of one class adds nothing to the
    ROC AUC. NaN where no partition defines it.

    >>> class M:
    ...     def __init__(self, labels):
    ...         self.progressive = Progressive()
    ...         for p, y in labels:
    ...             self.progressive.update(y, p)
    >>> s = merged_metrics([M([(0.9, 1), (0.1, 0)]), M([(0.3, 0), (0.4, 0)]), M([])])
    >>> s["labels"], s["roc_auc"], s["late_rate"]
    (4.0, 1.0, 0.25)
    """
    parts = [m.progressive.summary() for m in models]
    total = sum(part["labels"] for part in parts)
    if len(parts) == 1 or not total:
        return parts[0]
    out = {"labels": total}
    for key in parts[0]:
        if key == "labels":
            continue
        defined = [part for part in parts if not math.isnan(part[key])]
        weight = sum(part["labels"] for part in defined)
        out[key] = (sum(part[key] * part["labels"] for part in defined) / weight
                    if weight else math.nan)
    return out


__all__ = [
    "BINS", "BinnedAUC", "Calibration", "Progressive", "average_precision", "bin_of", "brier",
    "calibration", "calibration_gap", "ece", "log_loss", "merged_metrics", "reliability",
    "roc_auc", "roc_points",
]
