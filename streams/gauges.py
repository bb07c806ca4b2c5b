"""The worker's gauges, refreshed once per tick (no per-event cost); the ones that walk
every customer less often (``portfolio_seconds``)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from models.features import OpenBook
from models.metrics import merged_metrics
from models.money import to_major
from models.policy import grace_seconds
from schemas.records import BANDS
from streams.engines import PartitionEngines
from streams.health import HealthExporter
from streams.metrics import Metrics
from streams.resume import ResumePoints

if TYPE_CHECKING:
    from models.config import ScoringConfig


class Gauges:
    """Sets the gauges of :class:`~streams.metrics.Metrics` and the health exporter."""

    def __init__(self, metrics: Metrics, health: HealthExporter, cfg: ScoringConfig,
                 portfolio_seconds: float) -> None:
        self.metrics, self.health, self.cfg = metrics, health, cfg
        self.portfolio_seconds = portfolio_seconds
        self.portfolio_at = -math.inf

    def observe(self, engines: PartitionEngines, positions: ResumePoints) -> None:
        """Refresh the gauges; the O(customers) ones at most every ``portfolio_seconds``."""
        m = self.metrics
        m.customers.set(sum(len(store.data) for _, (_, store) in engines.items()))
        now = time.monotonic()
        if now - self.portfolio_at >= self.portfolio_seconds:
            self.portfolio_at = now
            self.observe_portfolio(engines)
        found = [e for _, (e, _) in engines.items()]
        if found:
            summary = merged_metrics([e.model for e in found])
            m.model_auc.set(summary["roc_auc"])
            m.model_logloss.set(summary["log_loss"])
            m.model_brier.set(summary["brier"])
            m.model_ece.set(summary["ece"])
            m.model_labels.set(sum(e.model.labels_seen for e in found))
        m.buffered.set(sum(e.buffered for e in found))
        for p, (engine, _) in engines.items():
            wm = engine.stream_time
            if wm != float("-inf"):
                m.watermark.labels(str(p)).set(wm)
        m.checkpoint_age.set(time.monotonic() - engines.last_checkpoint)
        self.health.refresh()
        for (topic, partition), lag in positions.lag().items():
            m.consumer_lag.labels(topic, str(partition)).set(lag)

    def observe_portfolio(self, engines: PartitionEngines) -> None:
        """Customers by band and money at risk: a walk over every customer."""
        bands = [0] * len(BANDS)
        risk = 0
        grace = grace_seconds(self.cfg)
        for _, (engine, store) in engines.items():
            for state in store.data.values():
                bands[state.band] += 1
                risk += OpenBook(state, engine.stream_time, grace).priority
        for name, count in zip(BANDS, bands, strict=True):
            self.metrics.customers_by_band.labels(name).set(count)
        self.health.set_money_at_risk(to_major(risk))
