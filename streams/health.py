"""Model-health and portfolio gauges of a worker: the glue between :mod:`models.drift` and
Prometheus. The worker calls ``on_score`` / ``on_label`` per emitted score / resolved label
(O(1) each), ``set_money_at_risk`` and ``refresh`` once per tick, ``on_rebalance`` when its
partitions are reassigned.

Drift statistics (PSI, window AUC, ...) are per worker: each worker compares the scores *it*
emits against its own reference (the first ``psi_reference_size`` scores after start, or the
reference saved by :meth:`HealthExporter.save` and loaded on the next start).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from models.drift import ModelHealth

log = logging.getLogger("arscore.health")

DEFAULT_REFERENCE_SIZE = 1000
DEFAULT_WINDOW = 1000


class HealthExporter:
    """Owns the drift / model-health / money-at-risk metrics on ``registry``."""

    def __init__(self, registry: CollectorRegistry, reference_size: int = DEFAULT_REFERENCE_SIZE,
                 window: int = DEFAULT_WINDOW, health: ModelHealth | None = None) -> None:
        self.health = health or ModelHealth(reference_size=reference_size, window=window)
        r = registry
        self.psi = Gauge("arscore_score_psi", "Population stability index of the emitted "
                         "p_late distribution (last N scores) against the reference window "
                         "(0 until the reference is complete; > 0.2 = significant shift)",
                         registry=r)
        self.reference_ready = Gauge("arscore_score_psi_reference_ready", "1 once the PSI "
                                     "reference window is complete (or loaded), else 0",
                                     registry=r)
        self.drifts = Counter("arscore_model_drift_detected_total", "Changes in the model's "
                              "error rate detected by ADWIN over resolved labels", registry=r)
        self.window_auc = Gauge("arscore_model_window_roc_auc", "ROC AUC over the last W "
                                "resolved labels (NaN until both outcomes are in the window)",
                                registry=r)
        self.window_logloss = Gauge("arscore_model_window_log_loss", "Log loss over the last W "
                                    "resolved labels", registry=r)
        self.window_error = Gauge("arscore_model_window_error_rate", "ADWIN's estimate of the "
                                  "share of labels on the wrong side of 0.5", registry=r)
        self.calibration_gap = Gauge("arscore_model_calibration_gap", "Mean predicted p_late "
                                     "minus observed late rate over the last W labels "
                                     "(> 0 = over-predicts lateness)", registry=r)
        self.money_at_risk = Gauge("arscore_money_at_risk", "Sum over customers of open amount "
                                   "x p_late (currency units) on this worker", registry=r)
        self.rebalances = Counter("arscore_rebalances_total", "Consumer-group rebalances "
                                  "(partition reassignments) seen by this worker", registry=r)

    @classmethod
    def from_settings(cls, registry: CollectorRegistry, settings: Any) -> HealthExporter:
        """Sizes from ``ARSCORE_PSI_REFERENCE_SIZE`` / ``ARSCORE_HEALTH_WINDOW`` when set."""
        return cls(registry,
                   reference_size=int(getattr(settings, "psi_reference_size",
                                              DEFAULT_REFERENCE_SIZE)),
                   window=int(getattr(settings, "health_window", DEFAULT_WINDOW)))

    # --- the calls the worker makes -----------------------------------------------------

    def on_score(self, p: float) -> None:
        self.health.observe_score(p)

    def on_label(self, p: float, y: int) -> None:
        """``p`` = the prediction made at issue, ``y`` = 1 if the invoice was paid late."""
        if self.health.observe_label(p, y):
            self.drifts.inc()
            log.warning("model error rate changed (ADWIN drift #%d after %d labels)",
                        self.health.drifts_detected, self.health.labels_seen)

    def set_money_at_risk(self, value: float) -> None:
        self.money_at_risk.set(value)

    def on_rebalance(self) -> None:
        self.rebalances.inc()

    def refresh(self) -> dict[str, float]:
        """Recompute the windowed statistics and set the gauges; returns the snapshot."""
        s = self.health.snapshot()
        self.psi.set(s["psi"])
        self.reference_ready.set(s["reference_ready"])
        self.window_auc.set(s["window_roc_auc"])
        self.window_logloss.set(s["window_log_loss"])
        self.window_error.set(s["error_rate"])
        self.calibration_gap.set(s["calibration_gap"])
        return s

    # --- reference checkpoint -----------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the health state (reference included) atomically as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.health.to_dict(), allow_nan=False))
        os.replace(tmp, path)

    def load(self, path: Path) -> bool:
        """Resume from a saved health state; False (and a log line) if absent or unreadable."""
        if not path.is_file():
            return False
        try:
            self.health = ModelHealth.from_dict(json.loads(path.read_text()))
        except (ValueError, OSError) as exc:
            log.error("ignoring model-health checkpoint %s: %s", path, exc)
            return False
        return True


__all__ = ["DEFAULT_REFERENCE_SIZE", "DEFAULT_WINDOW", "HealthExporter"]
