"""Model health: score drift (PSI), an error-rate change detector, windowed quality.

Pure and cheap per update (O(1) amortised); the windowed statistics are recomputed on
demand by :meth:`ModelHealth.snapshot`, which the worker calls once per metrics refresh.

- **PSI** (population stability index) of the score distribution: fixed equal-width bins
  over [0, 1]; the *reference* is the first ``reference_size`` scores after start (or a
  saved reference, see :meth:`ModelHealth.to_dict`); the *current* distribution is the last
  ``reference_size`` scores. Shares are floored at ``epsilon`` so an empty bin never gives
  log(0). Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
- **Error-rate change detector**: River's :class:`river.drift.ADWIN` fed with one error per
  resolved label (1 when the prediction was on the wrong side of 0.5, else 0).
- **Sliding-window quality** over the last ``window`` labels, by :mod:`models.metrics`:
  exact ROC AUC by ranking (ties get average ranks), log loss, Brier score and calibration
  gap (mean predicted minus observed late rate; positive = the model over-predicts
  lateness); NaN where undefined, as everywhere in :mod:`models.metrics`.

>>> h = ModelHealth(reference_size=4, window=4)
>>> for p in (0.1, 0.1, 0.9, 0.9):
...     h.observe_score(p)
>>> h.snapshot()["psi"]  # the current window is the reference itself
0.0
>>> for p, y in ((0.2, 0), (0.3, 0), (0.7, 1), (0.6, 0)):
...     _ = h.observe_label(p, y)
>>> s = h.snapshot()
>>> s["window_roc_auc"], round(s["calibration_gap"], 3)
(1.0, 0.2)
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from river import drift

from models.metrics import bin_of, brier, calibration_gap, log_loss, roc_auc

FORMAT = "arscore-model-health/1"


def psi(reference: list[int], current: list[int], epsilon: float = 1e-4) -> float:
    """Population stability index of two histograms over the same bins.

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i), with e_i the reference share and a_i the current
    share of bin i, each floored at ``epsilon``. 0.0 when either histogram is empty.

    >>> psi([50, 50], [50, 50])
    0.0
    >>> round(psi([50, 50], [80, 20]), 4)  # 0.3*ln(1.6) + (-0.3)*ln(0.4)
    0.4159
    """
    n_ref, n_cur = sum(reference), sum(current)
    if not n_ref or not n_cur:
        return 0.0
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        e = max(r / n_ref, epsilon)
        a = max(c / n_cur, epsilon)
        total += (a - e) * math.log(a / e)
    return total


class ModelHealth:
    """Score drift, error-rate change detection and windowed model quality for one worker.

    ``observe_score(p)`` for every emitted score, ``observe_label(p, y)`` for every resolved
    label (``p`` = the prediction made at issue), ``snapshot()`` for the numbers.
    """

    def __init__(self, reference_size: int = 1000, window: int = 1000, bins: int = 10,
                 epsilon: float = 1e-4, delta: float = 0.002) -> None:
        if reference_size < 1 or window < 1 or bins < 2:
            raise ValueError("reference_size and window must be >= 1, bins >= 2")
        self.reference_size = reference_size
        self.window = window
        self.bins = bins
        self.epsilon = epsilon
        self.delta = delta
        self.reference = [0] * bins
        """Histogram of the reference scores; frozen once it holds ``reference_size``."""
        self.reference_frozen = False
        self.current = [0] * bins
        self._recent: deque[int] = deque(maxlen=reference_size)  # bin indices, newest last
        self._labels: deque[tuple[float, int]] = deque(maxlen=window)
        self.detector: Any = drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]
        self.scores_seen = 0
        self.labels_seen = 0
        self.drifts_detected = 0

    @property
    def reference_ready(self) -> bool:
        return self.reference_frozen

    def observe_score(self, p: float) -> None:
        """One emitted score: fills the reference first, then slides the current window."""
        b = bin_of(p, self.bins)
        self.scores_seen += 1
        if not self.reference_frozen:
            self.reference[b] += 1
            self.reference_frozen = sum(self.reference) >= self.reference_size
        if len(self._recent) == self._recent.maxlen:
            self.current[self._recent[0]] -= 1
        self._recent.append(b)
        self.current[b] += 1

    def observe_label(self, p: float, y: int) -> bool:
        """One resolved label with the prediction made at issue; True if drift was detected."""
        y = 1 if y else 0
        self._labels.append((p, y))
        self.labels_seen += 1
        self.detector.update(1.0 if abs(y - p) > 0.5 else 0.0)
        if self.detector.drift_detected:
            self.drifts_detected += 1
            return True
        return False

    def snapshot(self) -> dict[str, float]:
        """Every statistic as a float (NaN where undefined, e.g. AUC with one class only)."""
        ps = [p for p, _ in self._labels]
        ys = [y for _, y in self._labels]
        n = len(ps)
        return {
            "psi": psi(self.reference, self.current, self.epsilon) if self.reference_ready else 0.0,
            "reference_scores": float(sum(self.reference)),
            "reference_ready": 1.0 if self.reference_ready else 0.0,
            "scores_seen": float(self.scores_seen),
            "labels_seen": float(self.labels_seen),
            "drifts_detected": float(self.drifts_detected),
            "error_rate": float(self.detector.estimation),
            "window_labels": float(n),
            "window_roc_auc": roc_auc(ys, ps),
            "window_log_loss": log_loss(ys, ps),
            "window_brier": brier(ys, ps),
            "window_late_rate": sum(ys) / n if n else math.nan,
            "calibration_gap": calibration_gap(ys, ps),
        }

    # --- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: the reference, the recent scores and labels, the counters.

        The detector's internal buckets are not stored; :meth:`from_dict` rebuilds the
        detector by replaying the windowed errors (so it resumes from recent history).
        """
        return {
            "format": FORMAT,
            "reference_size": self.reference_size, "window": self.window, "bins": self.bins,
            "epsilon": self.epsilon, "delta": self.delta,
            "reference": list(self.reference), "reference_frozen": self.reference_frozen,
            "recent": list(self._recent),
            "labels": [[p, y] for p, y in self._labels],
            "scores_seen": self.scores_seen, "labels_seen": self.labels_seen,
            "drifts_detected": self.drifts_detected,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelHealth:
        """Inverse of :meth:`to_dict`; raises ValueError on anything else.

        >>> h = ModelHealth(reference_size=2, window=3)
        >>> h.observe_score(0.3); h.observe_score(0.8); h.observe_label(0.3, 1)
        False
        >>> ModelHealth.from_dict(h.to_dict()).to_dict() == h.to_dict()
        True
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a model-health record (expected format {FORMAT!r})")
        try:
            h = cls(int(data["reference_size"]), int(data["window"]), int(data["bins"]),
                    float(data["epsilon"]), float(data["delta"]))
            reference = [int(c) for c in data["reference"]]
            frozen = bool(data["reference_frozen"])
            recent = [int(b) for b in data["recent"]]
            labels = [(float(p), int(y)) for p, y in data["labels"]]
            counters = (int(data["scores_seen"]), int(data["labels_seen"]),
                        int(data["drifts_detected"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"corrupt model-health record: {exc}") from None
        if len(reference) != h.bins or any(not 0 <= b < h.bins for b in recent):
            raise ValueError("corrupt model-health record: bins do not match")
        h.reference, h.reference_frozen = reference, frozen
        for b in recent[-h.reference_size:]:
            h._recent.append(b)
            h.current[b] += 1
        for p, y in labels[-h.window:]:
            h._labels.append((p, y))
            h.detector.update(1.0 if abs(y - p) > 0.5 else 0.0)
        h.scores_seen, h.labels_seen, h.drifts_detected = counters
        return h

    def with_reference(self, reference: list[int]) -> ModelHealth:
        """Use a saved reference histogram (e.g. from a checkpoint) instead of the first scores.

        >>> h = ModelHealth(reference_size=2).with_reference([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        >>> h.reference_ready
        True
        """
        if len(reference) != self.bins or sum(reference) < 1:
            raise ValueError(f"a reference needs {self.bins} bins and at least one score")
        self.reference = list(reference)
        self.reference_frozen = True  # a saved reference is complete, whatever its size
        return self


__all__ = ["ModelHealth", "psi"]
