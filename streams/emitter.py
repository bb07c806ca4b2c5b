"""What a batch produced, sent and counted: scores, alerts and dead letters go through the
:class:`~streams.outbox.Outbox`; the metrics are added once per batch.

Which scores a batch sends is the core's rule (:func:`models.outputs.newest_scores`). Each
event goes into the core with ``(message, wall)`` as its token; the Step hands it back,
and only this module reads it: the record's position and bytes for a dead letter and the
latency metrics.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from models.deadletters import rejected_letter
from models.outputs import newest_scores
from models.processor import DUPLICATE, OK, REJECTED, Step
from schemas.codec import DecodeError
from schemas.events import Event, decode_event
from schemas.records import DeadLetter, dead_letter, encode
from streams.health import HealthExporter
from streams.metrics import Metrics
from streams.outbox import Outbox
from streams.settings import Settings

log = logging.getLogger("arscore.worker")
_OUTCOME = {OK: "ok", DUPLICATE: "duplicate", REJECTED: "dead_lettered"}


class Emitter:
    """Sends a batch's outputs through the outbox and counts them in the metrics."""

    def __init__(self, settings: Settings, metrics: Metrics, health: HealthExporter,
                 outbox: Outbox) -> None:
        self.settings, self.metrics, self.health, self.outbox = settings, metrics, health, outbox

    def decode(self, msg: Any, letters: list[DeadLetter]) -> Event | None:
        """The record's event, or None with a dead letter added to ``letters``."""
        try:
            return decode_event(msg.value if msg.value is not None else b"")
        except DecodeError as exc:
            self.metrics.events.labels("unknown", "dead_lettered").inc()
            letters.append(dead_letter(msg.value or b"", exc, topic=msg.topic,
                                       partition=msg.partition, offset=msg.offset,
                                       failed_at=now_iso()))
            return None

    async def emit(self, steps: list[Step], letters: list[DeadLetter]) -> None:
        """Send what a batch produced and count it (metrics are added once per batch)."""
        m, s = self.metrics, self.settings
        outbox = self.outbox
        outcomes: Counter[tuple[str, str]] = Counter()
        label_counts: Counter[int] = Counter()
        alert_counts: Counter[str] = Counter()
        late = 0
        for step in steps:
            if step.event is not None:
                outcomes[step.event.type, _OUTCOME[step.status]] += 1
                if step.late and step.status != DUPLICATE:
                    late += 1
                    msg = step.token[0]  # type: ignore[index]
                    log.info("%s:%d offset %d: %s %s at %s applied late (behind the stream "
                             "time)", msg.topic, msg.partition, msg.offset, step.event.type,
                             step.event.event_id, step.event.at.isoformat())
            if step.status == REJECTED:
                msg = step.token[0]  # type: ignore[index]
                letters.append(rejected_letter(step, msg.value or b"", topic=msg.topic,
                                               partition=msg.partition, offset=msg.offset,
                                               failed_at=now_iso()))
                continue
            for label in step.labels:
                label_counts[label.y] += 1
                self.health.on_label(label.p_at_issue, label.y)
            for alert in step.alerts:
                outbox.add(s.alerts_topic, step.customer_id.encode(), encode(alert))
                alert_counts[alert.kind] += 1
        # The batch's commit flushes the scores before writing state.
        sent_at = time.time()
        bands: Counter[str] = Counter()
        for customer_id, step in newest_scores(steps).items():
            score = step.score
            assert score is not None
            outbox.add(s.scores_topic, customer_id.encode(), encode(score))
            bands[score.band] += 1
            m.p_late.observe(score.p_late)
            self.health.on_score(score.p_late)
            if step.token is not None:  # a deadline's score has no record behind it
                msg, wall = step.token  # type: ignore[misc]
                m.latency.observe(max(0.0, sent_at - wall))
                if msg.timestamp:  # a producer's clock may run ahead of ours: never negative
                    m.ingest_latency.observe(max(0.0, sent_at - msg.timestamp))
        for letter in letters:
            key = letter.customer_id.encode() if letter.customer_id else None
            outbox.add(s.deadletter_topic, key, encode(letter))
        await outbox.send()
        for (kind, outcome), n in outcomes.items():
            m.events.labels(kind, outcome).inc(n)
        for y, n in label_counts.items():
            m.labels.labels("late" if y else "on_time").inc(n)
        for band, n in bands.items():
            m.scores.labels(band).inc(n)
        for kind, n in alert_counts.items():
            m.alerts.labels(kind).inc(n)
        if late:
            m.late_events.inc(late)


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
