"""Prometheus metrics of a worker, built on an injected registry (a fresh one per test).

Names follow Prometheus conventions: ``arscore_`` prefix, base units (seconds),
``_total`` counters. Label values come from small fixed sets (event types, outcomes,
bands, alert kinds, partitions) — never customer ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models.build import arscore_version, core_build, cython_version
from schemas.events import EVENT_TYPES
from schemas.records import ALERT_KINDS, BANDS

OUTCOMES = ("ok", "duplicate", "dead_lettered")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INGEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                  900.0, 3600.0)
"""Up to an hour: after an outage the backlog's records are scored long after they arrived."""
P_BUCKETS = (*tuple(round(0.05 * i, 2) for i in range(1, 20)), 1.0)


class Metrics:
    """Every metric the worker exports; ``tests/integration`` scrapes them over HTTP."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.build_info = Gauge("arscore_build_info", "Always 1: the arscore version and which "
                                "core runs (compiled by Cython, pure Python, or partial)",
                                ["version", "core", "cython"], registry=r)
        self.build_info.labels(arscore_version(), core_build(), cython_version() or "").set(1)
        self.events = Counter("arscore_events_total", "Input records consumed, by event type and "
                              "outcome (ok, duplicate, dead_lettered)", ["type", "outcome"],
                              registry=r)
        self.late_events = Counter("arscore_late_events_total", "Events older than the stream "
                                   "time, applied at once (not in event-time order)", registry=r)
        self.latency = Histogram("arscore_processing_latency_seconds", "Wall time from an event "
                                 "reaching the worker to its score being sent",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_latency = Histogram(
            "arscore_ingest_to_score_seconds", "Time from an input record's broker timestamp "
            "(set by its producer, or by the broker under LogAppendTime) to its score being "
            "sent: also counts the time it waited in the topic and in the consumer",
            buckets=INGEST_BUCKETS, registry=r)
        self.consumer_lag = Gauge("arscore_consumer_lag", "Records behind the high watermark, per "
                                  "input topic partition", ["topic", "partition"], registry=r)
        self.buffered = Gauge("arscore_reorder_buffered_events", "Events waiting in the "
                              "event-time reorder buffer", registry=r)
        self.customers = Gauge("arscore_customers_tracked", "Customers with state on this worker",
                               registry=r)
        self.customers_by_band = Gauge("arscore_customers_by_band", "Customers whose latest "
                                       "score is in each band", ["band"], registry=r)
        self.scores = Counter("arscore_scores_total", "Scores emitted, by band", ["band"],
                              registry=r)
        self.p_late = Histogram("arscore_score_p_late", "Distribution of emitted p_late",
                                buckets=P_BUCKETS, registry=r)
        self.alerts = Counter("arscore_alerts_total", "Alerts emitted, by kind", ["kind"],
                              registry=r)
        self.labels = Counter("arscore_labels_total", "Invoice labels resolved and learned, by "
                              "outcome", ["outcome"], registry=r)
        self.model_auc = Gauge("arscore_model_roc_auc", "Progressive ROC AUC of the late-payment "
                               "model (label-weighted over partitions)", registry=r)
        self.model_logloss = Gauge("arscore_model_log_loss", "Progressive log loss", registry=r)
        self.model_brier = Gauge("arscore_model_brier_score", "Progressive Brier score",
                                 registry=r)
        self.model_ece = Gauge("arscore_model_calibration_error", "Expected calibration error "
                               "(progressive)", registry=r)
        self.model_labels = Gauge("arscore_model_labels_seen", "Labels the models have learned",
                                  registry=r)
        self.checkpoint_age = Gauge("arscore_checkpoint_age_seconds", "Seconds since the models "
                                    "were last checkpointed", registry=r)
        self.partitions_active = Gauge("arscore_partitions_active", "Input partitions this "
                                       "worker owns and has recovered (ready to process)",
                                       registry=r)
        self.watermark = Gauge("arscore_event_time_watermark_seconds", "Event-time watermark per "
                               "partition (epoch seconds)", ["partition"], registry=r)
        for t in (*EVENT_TYPES, "unknown"):
            for o in OUTCOMES:
                self.events.labels(t, o)
        for b in BANDS:
            self.scores.labels(b)
            self.customers_by_band.labels(b)
        for k in ALERT_KINDS:
            self.alerts.labels(k)
        for outcome in ("late", "on_time"):
            self.labels.labels(outcome)
