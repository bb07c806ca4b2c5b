"""In-process replay: a file of events through the same engine the worker runs.

With ``partitions`` > 1 and the worker's partitioner, customers are split into one
engine (and one model) per partition exactly as the Kafka path splits them, so a
replay and a worker over the same events end in the same state and scores.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from models.config import ScoringConfig
from models.deadletters import rejected_letter
from models.engine import Engine
from models.metrics import merged_metrics
from models.model import OnlineModel
from models.outputs import newest_scores
from models.processor import REJECTED, Step
from models.state import CustomerState
from models.tools.evaluation import first_alert_times
from schemas.codec import DecodeError
from schemas.events import decode_event
from schemas.records import AlertRecord, DeadLetter, ScoreRecord, dead_letter

Output = tuple[str, ScoreRecord | AlertRecord | DeadLetter]


@dataclass
class Counts:
    lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    scores: int = 0
    late: int = 0
    first_alerts: list[tuple[str, str, float]] = field(default_factory=list)


class Replay:
    """Feed raw lines; get scores, alerts and dead letters back in stream order."""

    def __init__(self, cfg: ScoringConfig, models: list[OnlineModel], *,
                 partition_of: Callable[[str], int] | None = None, reorder_seconds: float = 0.0,
                 source: str = "file", clock: Callable[[], str] = lambda: "") -> None:
        """``clock`` stamps dead letters' ``failed_at`` (wall time is the caller's business)."""
        self.stores: list[dict[str, CustomerState]] = [{} for _ in models]
        self.engines = [Engine(cfg, m, store, sources=(source,), reorder_seconds=reorder_seconds)
                        for m, store in zip(models, self.stores, strict=True)]
        self.partition_of = partition_of or (lambda _cid: 0)
        self.source = source
        self.clock = clock
        self.counts = Counts()
        self.started = time.perf_counter()

    def feed(self, raw: bytes, line_no: int) -> Iterator[Output]:
        """Decode and submit one line; bad lines come back as dead letters."""
        self.counts.lines += 1
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            return
        try:
            event = decode_event(raw)
        except DecodeError as exc:
            self.counts.outcomes["dead_lettered"] += 1
            yield "deadletter", dead_letter(raw, exc, topic=self.source, partition=None,
                                            offset=line_no, failed_at=self.clock())
            return
        engine = self.engines[self.partition_of(event.customer_id)]
        yield from self._emit(engine.submit(event, self.source, line_no, token=(line_no, raw)))

    def finish(self) -> Iterator[Output]:
        for engine in self.engines:
            yield from self._emit(engine.flush())

    def _emit(self, steps: list[Step]) -> Iterator[Output]:
        """The outputs of what one line (or the end of input) released, in stream order;
        scores by the worker's rule (:func:`~models.outputs.newest_scores`): a customer's
        newest score of the release."""
        sent = newest_scores(steps)
        for step in steps:
            if step.event is not None:
                self.counts.outcomes[step.status] += 1
                self.counts.late += step.late
            if step.status == REJECTED:
                self.counts.outcomes["dead_lettered"] += 1
                line: tuple[int, bytes] = step.token  # type: ignore[assignment]
                yield "deadletter", rejected_letter(step, line[1], topic=self.source,
                                                    partition=None, offset=line[0],
                                                    failed_at=self.clock())
                continue
            if step.score is not None and sent.get(step.customer_id) is step:
                self.counts.scores += 1
                yield "score", step.score
            for alert in step.alerts:
                self.counts.alerts[alert.kind] += 1
                self.counts.first_alerts.append((alert.customer_id, alert.kind, step.at))
                yield "alert", alert

    def first_alerts(self) -> dict[str, float]:
        return first_alert_times(self.counts.first_alerts)

    def summary(self) -> dict[str, Any]:
        models = [e.model for e in self.engines]
        metrics = merged_metrics(models)
        seconds = time.perf_counter() - self.started
        customers = sum(len(s) for s in self.stores)
        return {
            "lines": self.counts.lines,
            "events": dict(self.counts.outcomes),
            "late_events": self.counts.late,
            "customers": customers,
            "scores": self.counts.scores,
            "alerts": dict(self.counts.alerts),
            "model": metrics,
            "seconds": round(seconds, 2),
            "events_per_second": round(self.counts.lines / seconds) if seconds > 0 else None,
        }
