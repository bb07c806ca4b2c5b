"""Backtest: a history of events through the live engine, scored the way production scores.

The question a team asks before going live is "had arscore been running, how good
would its predictions at invoice issue have been?". So the events go through the
same :class:`~models.engine.Engine` (event-time order, deadlines, delayed labels)
and the same model, which predicts at issue and learns when each label resolves;
nothing is re-fitted with hindsight. What this module adds is bookkeeping:

- :class:`BacktestRun` collects, per invoice, the prediction made at issue, the
  feature snapshot and the label (when it resolved), plus the alerts raised;
- :func:`evaluation_split` picks the invoices issued on/after the evaluation date
  whose label had to be known by the end of the stream (so the late ones, which
  resolve last, are not under-counted), and the labels resolved before that date
  (what a batch baseline could have trained on).

The numbers are computed elsewhere: :mod:`models.tools.report` (the headline metrics,
from :mod:`models.metrics`, capture of late money, scores over time, alert quality)
and :mod:`models.tools.leakage` (every snapshot equals the features as of issue).

Pure: no files, no clock, no printing.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass

from models import invoice as iv
from models.config import ScoringConfig
from models.engine import Engine
from models.model import OnlineModel
from models.policy import label_horizon
from models.processor import OK, Step
from models.state import CustomerState
from schemas.events import Event, InvoiceIssued

Key = tuple[str, str]
"""(customer_id, invoice_id): invoice ids need only be unique per customer."""


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
        horizon = label_horizon(self.cfg)
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

    def _label(self, cid: str, label: iv.Label) -> None:
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
