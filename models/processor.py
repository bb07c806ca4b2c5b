"""One customer, one step: apply an event (or the passing of time) and say what came out.

This is the per-event pure function of the design: ``(state, event, now) -> (state,
outputs)``. It calls the state transitions, the model (predict at issue, learn when
labels resolve), scoring and the alert policy. The partition-level engine decides
*when* each step runs; this module decides *what* it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from models import invoice as iv
from models import state as st
from models import transitions as tr
from models.alerts import alert_id, decide, track_p
from models.config import DAY, ScoringConfig
from models.features import OpenBook, feature_list, features
from models.model import OnlineModel
from models.money import to_str, to_units
from models.policy import grace_seconds, next_band
from models.scoring import reasons as explain
from models.scoring import treatment as suggest
from schemas.events import (
    Event,
    InvoiceAdjusted,
    InvoiceDisputed,
    InvoiceDisputeResolved,
    InvoiceIssued,
    PaymentReceived,
)
from schemas.records import BANDS, AlertRecord, ScoreRecord

OK, DUPLICATE, REJECTED = "ok", "duplicate", "rejected"

Reuse = tuple[OpenBook, Sequence[float]]
"""After a plain invoice issue: the open-invoice pass (new invoice included) and the snapshot."""


@dataclass(slots=True)
class Step:
    """What one step did: its status, and the score, alerts and labels it produced."""

    customer_id: str
    status: str
    at: float
    reason: str | None = None
    event: Event | None = None
    score: ScoreRecord | None = None
    alerts: list[AlertRecord] = field(default_factory=list)
    labels: list[iv.Label] = field(default_factory=list)
    late: bool = False
    token: object = None
    """What the caller passed with the triggering event (:meth:`Engine.submit`), handed
    back untouched: the worker's record metadata, a replay's line. None for deadlines."""


def iso(ts: float) -> str:
    """Event-time seconds as RFC 3339 UTC (what ``datetime.isoformat`` gives, ``Z`` for UTC).

    Whole seconds, the usual case, are formatted from a per-day cache of the date: this
    runs for every score.

    >>> iso(1704067993.0), iso(1704067993.25), iso(-1.0)
    ('2024-01-01T00:13:13Z', '2024-01-01T00:13:13.250000Z', '1969-12-31T23:59:59Z')
    """
    whole = int(ts)
    if whole != ts:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    day, second = divmod(whole, 86_400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}Z"


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    """The UTC date of a day number (days since the epoch), ISO formatted."""
    return datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()


class Processor:
    """Applies events to customer states with one model and one scoring configuration."""

    def __init__(self, cfg: ScoringConfig, model: OnlineModel) -> None:
        self.cfg = cfg
        self.model = model

    def apply(self, state: st.CustomerState | None, event: Event, *,
              at: float | None = None) -> tuple[st.CustomerState, Step]:
        """Apply one event; a redelivered or re-sent event (same event_id) changes nothing.

        Redelivery is recognised by event_id, not by offset: the engine releases events in
        event-time order, so offsets of one partition are not applied in increasing order
        and "offset <= highest applied" would wrongly drop a delayed event. The state passed
        in is updated in place and returned: write it back. ``at`` is ``event.at`` in epoch
        seconds, if the caller has converted it already.

        >>> from datetime import UTC, datetime, timedelta
        >>> from decimal import Decimal
        >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
        >>> issued = InvoiceIssued(event_id="e1", customer_id="c1", invoice_id="i1",
        ...                        amount=Decimal("100"), currency="EUR", issued_at=t0,
        ...                        due_at=t0 + timedelta(days=30))
        >>> proc = Processor(ScoringConfig(), OnlineModel(prior=0.3))
        >>> state, step = proc.apply(None, issued)
        >>> step.status, step.score.open_amount, step.score.p_late, step.score.band
        ('ok', '100.00', 0.3, 'medium')
        >>> state, step = proc.apply(state, issued)  # redelivered: nothing changes
        >>> step.status, step.reason, state.open_units
        ('duplicate', 'event_id already applied', 1000000)
        """
        s = state if state is not None else st.CustomerState(event.customer_id)
        if at is None:
            at = event.at.timestamp()
        event_key = st.id_key(event.event_id)
        if st.ring_has(s.seen, event_key):
            # not remembered again: a flood of one duplicate must not evict other ids
            return s, Step(s.customer_id, DUPLICATE, at, "event_id already applied", event)
        late = at < s.last_event
        labels, went_overdue = tr.advance(s, at, self.cfg)
        before = (s.currency, s.first_seen, s.last_event)
        try:
            tr.touch(s, at, getattr(event, "currency", None))
            changed, reuse = self._transition(s, event, at)
            labels += changed
        except tr.Rejected as exc:
            # transitions check before they change anything; undo touch() too, so a
            # refused event leaves no trace (not even the customer's currency)
            s.currency, s.first_seen, s.last_event = before
            self._learn(labels)
            st.remember_key(s, event_key, self.cfg)
            return s, Step(s.customer_id, REJECTED, at, str(exc), event, labels=labels)
        st.remember_key(s, event_key, self.cfg)
        step = self._finish(s, at, event.event_id, labels, went_overdue, reuse)
        step.event, step.late = event, late
        return s, step

    def advance(self, s: st.CustomerState, now: float) -> Step | None:
        """Let event time pass for this customer; a Step only if something changed."""
        labels, went_overdue = tr.advance(s, now, self.cfg)
        if not labels and not went_overdue:
            return None
        trigger = f"time:{iso(now)}"
        return self._finish(s, now, trigger, labels, went_overdue)

    # --- internals ----------------------------------------------------------------------

    def _transition(self, s: st.CustomerState, event: Event,
                    at: float) -> tuple[list[iv.Label], Reuse | None]:
        """Apply the event's transition: the labels it resolved, and what _finish may reuse."""
        cfg = self.cfg
        if isinstance(event, InvoiceIssued):
            return self._issue(s, event, at)
        if isinstance(event, PaymentReceived):
            return tr.receive_payment(s, to_units(event.amount), at, event.invoice_ids, cfg), None
        if isinstance(event, InvoiceAdjusted):
            return tr.adjust_invoice(s, event.invoice_id, to_units(event.amount), at,
                                     event.kind, cfg), None
        if isinstance(event, InvoiceDisputed | InvoiceDisputeResolved):
            tr.set_disputed(s, event.invoice_id, isinstance(event, InvoiceDisputed))
            return [], None
        raise tr.Rejected(f"unsupported event {type(event).__name__}")

    def _issue(self, s: st.CustomerState, event: InvoiceIssued,
               at: float) -> tuple[list[iv.Label], Reuse | None]:
        """Predict at issue on the snapshot, then open the invoice.

        A *plain* issue (no credit and no held cash to apply to it) changes only the
        open invoices and the billing totals, so the customer's score right after can
        reuse the snapshot's open-invoice pass (plus the new invoice) and its history
        features: one pass and half the feature work fewer per new invoice.
        """
        cfg = self.cfg
        units = to_units(event.amount)
        due = event.due_at.timestamp()
        book = OpenBook(s, at, grace_seconds(cfg))
        x = features(s, at, cfg, units, (due - at) / DAY, book=book)
        plain = not s.credit and not any(event.invoice_id in h.invoice_ids for h in s.held)
        labels = tr.issue_invoice(s, event.invoice_id, at, due, units, iv.pack(x),
                                  self.model.predict(x), cfg)
        if not plain or labels:
            return labels, None
        book.add(s.invoices[event.invoice_id])
        return labels, (book, x)

    def _learn(self, labels: list[iv.Label]) -> None:
        for label in labels:
            self.model.learn(label.x, label.y, label.p_at_issue)

    def _finish(self, s: st.CustomerState, now: float, trigger: str,
                labels: list[iv.Label], went_overdue: list[iv.Invoice],
                reuse: Reuse | None = None) -> Step:
        self._learn(labels)
        cfg = self.cfg
        if reuse is None:
            book = OpenBook(s, now, grace_seconds(cfg))
            x = feature_list(s, now, cfg, book=book)
        else:
            book, snapshot = reuse
            x = feature_list(s, now, cfg, book=book, same=snapshot)
        p, contributions = self.model.score(x)
        prev_band = s.band
        band = next_band(prev_band, p, cfg)
        why = explain(s, x, now, contributions, cfg, book=book)
        low = track_p(s, p, now, cfg)
        drafts = decide(s, prev_band=prev_band, band=band, p=p, low=low, now=now,
                        trigger=trigger, went_overdue=went_overdue, cfg=cfg, reasons=why)
        previous_p = s.p if s.p >= 0 else p
        s.band, s.p = band, p
        n_open = len(s.invoices)
        action = suggest(band, book.max_dpd, n_open > 0 and book.disputed == n_open)
        priority = to_str(book.priority)
        when = iso(now)
        p_late = round(p, 6)
        score = ScoreRecord(
            customer_id=s.customer_id, scored_at=when, event_id=trigger, p_late=p_late,
            band=BANDS[band], priority=priority, open_amount=to_str(book.open),
            overdue_amount=to_str(book.overdue), currency=s.currency,
            open_invoices=n_open, low_confidence=s.n_labels < cfg.min_labels_confident,
            treatment=action, model_version=self.model.version,
            labels_seen=self.model.labels_seen, reasons=why,
        )
        alerts = [
            AlertRecord(
                alert_id=alert_id(s.customer_id, d.kind, d.trigger), kind=d.kind,
                customer_id=s.customer_id, raised_at=when, band=BANDS[band], p_late=p_late,
                previous_p_late=round(previous_p, 6), priority=priority, treatment=action,
                message=d.message, invoice_id=d.invoice_id, reasons=why,
            )
            for d in drafts
        ] if drafts else []
        return Step(s.customer_id, OK, now, score=score, alerts=alerts, labels=labels)
