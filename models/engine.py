"""The partition engine: puts events in event-time order and lets time pass for every customer.

One engine owns the customers of one input partition (in replay, of the whole file,
or of one simulated partition). It holds:

- a **reorder buffer**: events wait until the *watermark* passes them, then are
  released in ``(event time, type, event_id)`` order. The watermark is the lowest,
  over the input sources that are not idle, of the newest event time seen, less
  ``reorder_seconds``. Taking the minimum over sources (Flink's rule) means two
  topics consumed at different speeds still merge in time order, so the Kafka path
  and a replay of the same events apply them in the same order;
- a **deadline queue**: the next moment each customer's state changes with no new
  event (an invoice passes due, or due + grace with money open). Deadlines are
  processed in time order between released events, so labels resolve, the model
  learns and alerts fire at the same point of the stream wherever this runs.

An event older than the stream time (later than the reorder window allows) is not
dropped: it is applied at once and its Step is marked ``late``. Events far ahead of
the stream are refused (see ``ScoringConfig.max_future_days``).

Wall-clock time enters only as an argument (``wall``), for idle detection.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Mapping, MutableMapping
from typing import NamedTuple

from models.config import DAY, ScoringConfig
from models.model import OnlineModel
from models.processor import REJECTED, Processor, Step
from models.state import CustomerState
from models.transitions import next_deadline
from schemas.events import Event

TYPE_ORDER = {"invoice.issued": 0, "invoice.disputed": 1, "invoice.dispute_resolved": 2,
              "invoice.adjusted": 3, "payment.received": 4}
"""Tie-break at equal event time: an invoice exists before it is paid."""


class Pending(NamedTuple):
    """An event waiting in the reorder buffer; also its heap entry, ordered by its first fields.

    One object per buffered event (not an entry tuple around a record): buffered events
    live long enough to reach the garbage collector's oldest generation, and every such
    object makes its full collections come sooner.
    """

    at: float
    """``event.at`` as epoch seconds, converted once."""
    order: int
    event_id: str
    seq: int
    """Arrival number: unique, so the comparison never reaches the fields below."""
    event: Event
    source: str
    offset: int
    token: object
    """The caller's, handed back on the event's Step (the core never reads it)."""


class Engine:
    """Event-time ordering, deadlines and customer steps for one partition.

    ``store`` maps customer_id to state (a dict in replay, a Faust table in the worker).
    """

    def __init__(self, cfg: ScoringConfig, model: OnlineModel,
                 store: MutableMapping[str, CustomerState], *, sources: tuple[str, ...],
                 reorder_seconds: float = 0.0, idle_seconds: float = math.inf,
                 wall: float = 0.0) -> None:
        self.cfg = cfg
        self.processor = Processor(cfg, model)
        self.store = store
        self.sources = sources
        self.reorder_seconds = reorder_seconds
        self.idle_seconds = idle_seconds
        self.max_seen: dict[str, float] = {}
        self.last_arrival = dict.fromkeys(sources, wall)
        self.lagging: frozenset[str] = frozenset()
        """Sources known to hold unread records (live mode): never idle, whatever the clock."""
        self.stream_time = -math.inf
        self._buffer: list[Pending] = []
        self._offsets: dict[str, list[int]] = {}
        """Per source, a min-heap of the offsets pushed into the reorder buffer."""
        self._released: dict[str, Counter[int]] = {}
        """Per source, offsets released from the buffer that are still in ``_offsets``
        (taken out once they reach the top of its heap)."""
        self._deadlines: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        self._seq = 0

    @property
    def model(self) -> OnlineModel:
        return self.processor.model

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def watermark(self, wall: float) -> float:
        """Event time up to which every source has (probably) delivered everything.

        A source is idle when nothing arrived from it for ``idle_seconds`` *and* it is not
        known to be lagging. Wall-clock silence alone is not enough: while a new owner
        catches up on a backlog (after a restart or a rebalance) one topic's records can
        arrive seconds before the other's, and treating the slower one as idle would
        release events ahead of records it still holds (they would then apply late, out of
        the order a replay uses).
        """
        low = math.inf
        for source in self.sources:
            if (source in self.lagging
                    or wall - self.last_arrival.get(source, wall) < self.idle_seconds):
                seen = self.max_seen.get(source, -math.inf)
                if seen < low:
                    low = seen
        if low == math.inf:  # every input is quiet: nothing more is coming, release it all
            return max(self.max_seen.values(), default=-math.inf)
        return low - self.reorder_seconds

    def submit(self, event: Event, source: str, offset: int = -1, wall: float = 0.0,
               token: object = None) -> list[Step]:
        """Take one decoded event from ``source`` at ``offset``; return the steps it released.

        ``offset`` (the input position, -1 for none) feeds the resume offsets, ``wall``
        (the caller's clock when the event arrived) the idle detection. ``token`` is the
        caller's own: it comes back on the event's Step (the worker passes its record's
        metadata, a replay the line), so the core carries no transport detail.

        Deadlines that fall before the event pass first, in event-time order: here the
        invoice goes overdue (day 30), then its label resolves late (due + grace + label
        lateness, day 36), then the payment of day 40 applies.

        >>> from datetime import UTC, datetime, timedelta
        >>> from decimal import Decimal
        >>> from schemas.events import InvoiceIssued, PaymentReceived
        >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
        >>> engine = Engine(ScoringConfig(), OnlineModel(prior=0.3), {}, sources=("s",))
        >>> [s.status for s in engine.submit(InvoiceIssued(
        ...     event_id="e1", customer_id="c1", invoice_id="i1", amount=Decimal("100"),
        ...     currency="EUR", issued_at=t0, due_at=t0 + timedelta(days=30)), "s", 0)]
        ['ok']
        >>> steps = engine.submit(PaymentReceived(
        ...     event_id="e2", customer_id="c1", amount=Decimal("100"), currency="EUR",
        ...     received_at=t0 + timedelta(days=40), invoice_ids=("i1",)), "s", 1)
        >>> [(s.event is not None, [(lb.invoice_id, lb.y) for lb in s.labels]) for s in steps]
        [(False, []), (False, [('i1', 1)]), (True, [])]
        """
        at = event.at.timestamp()
        max_seen = self.max_seen
        if max_seen and at > max(max_seen.values()) + self.cfg.max_future_days * DAY:
            reason = (f"event time is more than {self.cfg.max_future_days:g} days ahead "
                      "of the stream")
            return [Step(event.customer_id, REJECTED, at, reason, event, token=token)]
        self.last_arrival[source] = wall
        if at > max_seen.get(source, -math.inf):
            max_seen[source] = at
        self._seq += 1
        item = Pending(at, TYPE_ORDER[event.type], event.event_id, self._seq, event, source,
                       offset, token)
        if at < self.stream_time:
            return self._apply_late(item)
        heapq.heappush(self._buffer, item)
        if offset >= 0:
            heapq.heappush(self._offsets.setdefault(source, []), offset)
        return self._release(self.watermark(wall))

    def tick(self, wall: float) -> list[Step]:
        """Called periodically (live mode): releases what idle sources were holding back."""
        return self._release(self.watermark(wall))

    def flush(self) -> list[Step]:
        """End of input (replay): release everything and let time reach the last event."""
        return self._release(max(self.max_seen.values(), default=-math.inf))

    def resume_offsets(self) -> dict[str, int]:
        """Per source, the lowest offset still buffered (not yet applied), if any.

        Called at every state commit, with thousands of events buffered when one input
        runs ahead of the other in event time: it reads the top of a heap per source
        instead of walking the buffer.
        """
        return {source: offsets[0] for source, offsets in self._offsets.items() if offsets}

    def commit_point(self, next_read: Mapping[str, int]) -> dict[str, int]:
        """Per source, where a successor must start reading: the next offset not yet read
        (``next_read``), or the lowest offset still buffered if that is lower."""
        buffered = self.resume_offsets()
        return {src: min(off, buffered.get(src, off)) for src, off in next_read.items()}

    def restore(self, stream_time: float) -> None:
        """Continue from a commit point: the committed stream time, and every stored
        customer's next deadline scheduled again.

        The newest event time per source is deliberately not restored: it counts events
        that were still in the reorder buffer, which the successor reads again from
        :meth:`commit_point`. Restored, it would let the watermark pass those events before
        they came back, and they would apply late, out of a replay's order.
        """
        self.stream_time = stream_time
        for state in list(self.store.values()):
            self.schedule(state)

    def schedule(self, state: CustomerState) -> None:
        """(Re)compute a customer's next deadline; call after loading state from storage."""
        when = next_deadline(state, self.stream_time, self.cfg)
        if when is None:
            self._scheduled.pop(state.customer_id, None)
            return
        if self._scheduled.get(state.customer_id) != when:
            self._scheduled[state.customer_id] = when
            heapq.heappush(self._deadlines, (when, state.customer_id))

    # --- internals ----------------------------------------------------------------------

    def _release(self, watermark: float) -> list[Step]:
        steps: list[Step] = []
        buffer, deadlines = self._buffer, self._deadlines
        while buffer and buffer[0][0] <= watermark:
            item = heapq.heappop(buffer)
            if item.offset >= 0:
                self._forget_offset(item.source, item.offset)
            at = item.at
            if deadlines and deadlines[0][0] <= at:
                steps += self._advance_to(at)  # deadlines at t come before events at t
            if at > self.stream_time:
                self.stream_time = at
            steps.append(self._apply(item))
        if watermark > self.stream_time and math.isfinite(watermark):
            if deadlines and deadlines[0][0] <= watermark:
                steps += self._advance_to(watermark)
            self.stream_time = watermark
        return steps

    def _forget_offset(self, source: str, offset: int) -> None:
        """A buffered event was released: drop its offset from the source's heap.

        Events leave in event-time order, not offset order, so an offset below the heap's
        top is only marked, and removed once everything under it has left.
        """
        offsets, released = self._offsets[source], self._released.setdefault(source, Counter())
        released[offset] += 1
        while offsets and offsets[0] in released:
            top = heapq.heappop(offsets)
            released[top] -= 1
            if not released[top]:
                del released[top]

    def _advance_to(self, now: float, inclusive: bool = True) -> list[Step]:
        """Process every customer deadline before ``now`` (or at it, if inclusive)."""
        steps: list[Step] = []
        while self._deadlines and (self._deadlines[0][0] < now
                                   or (inclusive and self._deadlines[0][0] == now)):
            when, customer_id = heapq.heappop(self._deadlines)
            if self._scheduled.get(customer_id) != when:
                continue  # superseded
            del self._scheduled[customer_id]
            state = self.store.get(customer_id)
            if state is None:
                continue
            step = self.processor.advance(state, when)
            if step is not None:
                self.store[customer_id] = state
                steps.append(step)
            self.schedule(state)
        return steps

    def _apply_late(self, item: Pending) -> list[Step]:
        """An event behind the stream time: apply it now, then catch its customer up."""
        step = self._apply(item)
        step.late = True
        steps = [step]
        state = self.store[item.event.customer_id]
        caught_up = self.processor.advance(state, self.stream_time)
        if caught_up is not None:
            self.store[item.event.customer_id] = state
            steps.append(caught_up)
            self.schedule(state)
        return steps

    def _apply(self, item: Pending) -> Step:
        event = item.event
        state, step = self.processor.apply(self.store.get(event.customer_id), event, at=item.at)
        self.store[event.customer_id] = state
        self.schedule(state)
        step.token = item.token
        return step
