"""The partition engine: watermark, idle sources, reorder buffer, late/future events, deadlines."""

from __future__ import annotations

import math
from typing import Any

from helpers import adjust, dispute, invoice, payment, resolve, snapshot, ts
from hypothesis import given, settings
from hypothesis import strategies as hs

from models.config import DAY, ScoringConfig
from models.engine import TYPE_ORDER, Engine
from models.model import OnlineModel
from models.processor import OK, REJECTED, Step
from models.state import CustomerState
from schemas.events import Event

CFG = ScoringConfig()
HOUR = 3600.0


def engine(cfg: ScoringConfig = CFG, sources: tuple[str, ...] = ("s",), **kw: Any) -> Engine:
    return Engine(cfg, OnlineModel(prior=cfg.prior_late_rate), {}, sources=sources, **kw)


def ids(steps: list[Step]) -> list[str]:
    """Event id of each step, or ``customer@deadline-day`` for deadline steps."""
    return [s.event.event_id if s.event is not None
            else f"{s.customer_id}@{(s.at - ts(0)) / DAY:g}" for s in steps]


# --- watermark and idle sources -----------------------------------------------------------------


def test_watermark_is_the_minimum_over_sources_less_the_reorder_window() -> None:
    e = engine(sources=("inv", "pay"), reorder_seconds=HOUR)
    assert e.watermark(0.0) == -math.inf
    assert e.submit(invoice("c1", "i1", 100, 1, 31, event_id="a"), "inv", 0) == []
    assert e.watermark(0.0) == -math.inf  # "pay" has delivered nothing yet
    assert e.submit(payment("c1", 10, 2, event_id="b"), "pay", 0) == []
    assert e.watermark(0.0) == ts(1) - HOUR
    steps = e.submit(invoice("c1", "i2", 100, 3, 33, event_id="c"), "inv", 1)
    assert e.watermark(0.0) == ts(2) - HOUR
    assert ids(steps) == ["a"] and e.buffered == 2
    assert e.resume_offsets() == {"pay": 0, "inv": 1}
    assert ids(e.flush()) == ["b", "c"] and e.buffered == 0
    assert e.resume_offsets() == {}


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(hs.sampled_from(["inv", "pay"]), hs.integers(0, 20),
                          hs.booleans()), max_size=40))
def test_resume_offsets_is_the_lowest_buffered_offset_of_each_source(
        arrivals: list[tuple[str, int, bool]]) -> None:
    """The per-source heaps agree with a walk over the buffer after every submit and tick,
    whatever order event times arrive in (events leave by time, not by offset)."""
    e = engine(sources=("inv", "pay"), reorder_seconds=3 * DAY)
    next_offset = {"inv": 0, "pay": 0}
    for n, (source, day, is_invoice) in enumerate(arrivals):
        event = (invoice(f"c{n % 3}", f"i{n}", 100, day, day + 30, event_id=f"e{n}")
                 if is_invoice else payment(f"c{n % 3}", 10, day, event_id=f"e{n}"))
        e.submit(event, source, next_offset[source])
        next_offset[source] += 1
        walked: dict[str, int] = {}
        for item in e._buffer:
            walked[item.source] = min(item.offset, walked.get(item.source, item.offset))
        assert e.resume_offsets() == walked
    e.flush()
    assert e.resume_offsets() == {} and e.buffered == 0


def test_idle_source_is_excluded_after_idle_seconds() -> None:
    e = engine(sources=("inv", "pay"), idle_seconds=30.0, wall=100.0)
    assert e.submit(payment("c1", 10, 0, event_id="p0"), "pay", wall=100.0) == []
    assert ids(e.submit(invoice("c1", "i1", 100, 1, 31, event_id="a"), "inv", wall=110.0)) == [
        "p0"]
    assert e.submit(invoice("c1", "i2", 100, 2, 32, event_id="b"), "inv", wall=120.0) == []
    assert e.watermark(129.9) == ts(0)  # "pay" holds the watermark back
    assert e.tick(129.9) == []
    # "pay" has been silent for idle_seconds (wall time is an argument): "inv" alone counts
    assert e.watermark(130.0) == ts(2)
    assert ids(e.tick(130.0)) == ["a", "b"]
    # a source that speaks again counts again
    assert e.submit(payment("c1", 10, 3, event_id="p1"), "pay", wall=140.0) == []
    assert e.submit(invoice("c1", "i3", 100, 4, 34, event_id="c"), "inv", wall=141.0) != []
    assert e.watermark(141.0) == ts(3)
    assert e.watermark(170.5) == ts(4)  # "pay" idle again, "inv" not yet


def test_when_every_source_is_quiet_everything_is_released() -> None:
    e = engine(sources=("inv", "pay"), reorder_seconds=HOUR, idle_seconds=30.0)
    e.submit(invoice("c1", "i1", 100, 1, 31, event_id="a"), "inv", wall=0.0)
    e.submit(payment("c1", 10, 2, event_id="b"), "pay", wall=1.0)
    assert e.watermark(10.0) == ts(1) - HOUR
    assert e.watermark(31.0) == ts(2)  # both quiet: nothing more is coming
    assert ids(e.tick(31.0)) == ["a", "b"] and e.buffered == 0


def test_a_lagging_source_is_never_idle() -> None:
    """Catching up on a backlog: one topic's records may come seconds before the other's."""
    e = engine(sources=("inv", "pay"), idle_seconds=10.0, wall=0.0)
    e.lagging = frozenset({"pay"})  # the worker saw unread records on "pay"
    assert e.submit(invoice("c1", "i1", 100, 1, 31, event_id="a"), "inv", wall=5.0) == []
    assert e.tick(60.0) == []  # silent for a minute, but known to hold records: wait
    e.lagging = frozenset()
    assert ids(e.tick(60.0)) == ["a"]  # caught up and silent: idle after all


def test_never_heard_source_holds_back_until_idle() -> None:
    e = engine(sources=("inv", "pay"), idle_seconds=10.0, wall=0.0)
    assert e.submit(invoice("c1", "i1", 100, 1, 31, event_id="a"), "inv", wall=5.0) == []
    assert e.tick(9.0) == []
    assert ids(e.tick(10.0)) == ["a"]


def test_equal_times_release_in_type_then_event_id_order() -> None:
    e = engine(reorder_seconds=HOUR)
    arrivals = [payment("c1", 100, 1, "i1", event_id="p"),
                adjust("c1", "i2", 10, 1, event_id="adj"),
                invoice("c1", "i2", 100, 1, 31, event_id="z"),
                invoice("c1", "i1", 100, 1, 31, event_id="y"),
                dispute("c1", "i2", 1, event_id="d"),
                resolve("c1", "i2", 1, event_id="r")]
    for event in arrivals:
        assert e.submit(event, "s") == []
    steps = e.flush()
    assert ids(steps) == ["y", "z", "d", "r", "adj", "p"]
    assert all(s.status == OK for s in steps)
    state = e.store["c1"]
    assert "i1" not in state.invoices and state.held == ()  # the invoice existed when paid
    assert [TYPE_ORDER[s.event.type] for s in steps] == [0, 0, 1, 2, 3, 4]


# --- late and future events -----------------------------------------------------------------


def test_late_event_is_applied_at_once_and_flagged_late() -> None:
    e = engine()
    assert ids(e.submit(invoice("c1", "i1", 100, 10, 40, event_id="a"), "s")) == ["a"]
    steps = e.submit(payment("c1", 30, 5, "i1", event_id="late"), "s")
    assert ids(steps) == ["late"]
    assert steps[0].status == OK and steps[0].late is True
    assert e.store["c1"].invoices["i1"].open == 70 * 10_000
    assert e.stream_time == ts(10)


def test_late_event_of_another_customer_is_flagged_late() -> None:
    e = engine()
    e.submit(invoice("c1", "i1", 100, 10, 40), "s")
    [step] = e.submit(invoice("c2", "j1", 100, 5, 35), "s")
    assert step.status == OK and step.late is True


def test_late_invoice_already_past_its_deadlines_is_resolved() -> None:
    e = engine()
    for day in (0, 50, 100):
        e.submit(payment("c1", 1, day), "s")
    assert e.stream_time == ts(100)
    steps = e.submit(invoice("c2", "j1", 100, 1, 10), "s")  # late: deadline day 16 < day 100
    assert steps[0].status == OK
    steps += e.submit(payment("c1", 1, 101), "s") + e.flush()
    j1 = e.store["c2"].invoices["j1"]
    assert j1.overdue_noticed and j1.label == 1
    assert [lb.invoice_id for s in steps for lb in s.labels] == ["j1"]


def test_event_far_in_the_future_is_rejected_and_does_not_move_time() -> None:
    e = engine(reorder_seconds=HOUR)
    e.submit(invoice("c1", "i1", 100, 0, 30), "s", offset=0)
    [step] = e.submit(payment("c2", 10, 60.5, event_id="typo"), "s", offset=1, token="rec-1")
    assert step.status == REJECTED and "60 days ahead" in step.reason
    assert (step.token, step.customer_id) == ("rec-1", "c2")  # the caller's token, back
    assert e.max_seen == {"s": ts(0)} and "c2" not in e.store
    steps = e.submit(payment("c2", 10, 59.9, event_id="ok"), "s", offset=2)
    assert ids(steps)[0] != "typo" and all(s.status == OK for s in steps)
    assert e.max_seen == {"s": ts(59.9)}


# --- deadlines ------------------------------------------------------------------------------


def test_deadlines_fire_on_another_customers_later_event() -> None:
    e = engine()
    e.submit(invoice("c1", "i1", 100, 0, 10, event_id="a"), "s")
    steps = e.submit(invoice("c2", "j1", 100, 20, 50, event_id="b"), "s")
    assert ids(steps) == ["c1@10", "c1@16", "b"]
    overdue, resolved = steps[0], steps[1]
    assert overdue.labels == [] and overdue.score is not None and overdue.token is None
    assert [(lb.invoice_id, lb.y, lb.resolved_at) for lb in resolved.labels] == [
        ("i1", 1, ts(16))]
    assert resolved.score is not None and resolved.score.event_id.startswith("time:")
    assert e.model.labels_seen == 1 and e.store["c1"].invoices["i1"].label == 1


def test_flush_releases_everything_and_runs_deadlines_in_time_order() -> None:
    e = engine(reorder_seconds=1e9)
    for event in [invoice("c2", "j1", 100, 20, 50, event_id="b"),
                  invoice("c1", "i1", 100, 0, 10, event_id="a"),
                  payment("c3", 10, 13, event_id="c")]:
        assert e.submit(event, "s") == []
    steps = e.flush()
    assert ids(steps) == ["a", "c1@10", "c", "c1@16", "b"]
    assert e.stream_time == ts(20)
    assert e.flush() == []  # nothing left, and no deadline before the last event


def test_schedule_after_loading_state_from_storage() -> None:
    first = engine()
    first.submit(invoice("c1", "i1", 100, 0, 10), "s")
    stored = {"c1": first.store["c1"]}
    second = Engine(CFG, OnlineModel(), stored, sources=("s",))
    second.schedule(stored["c1"])
    steps = second.submit(payment("c9", 5, 30, event_id="x"), "s")
    assert [lb.invoice_id for s in steps for lb in s.labels] == ["i1"]
    assert ids(steps)[-1] == "x"


def test_paid_invoice_leaves_no_deadline_behind() -> None:
    e = engine()
    e.submit(invoice("c1", "i1", 100, 0, 10, event_id="a"), "s")
    e.submit(payment("c1", 100, 5, "i1", event_id="p"), "s")
    steps = e.submit(payment("c2", 1, 40, event_id="z"), "s")
    assert ids(steps) == ["z"]


# --- order independence within the reorder window (property) ----------------------------------

R = 6 * HOUR


@hs.composite
def stream(draw: Any) -> list[Event]:
    """Events for a few customers on the half hour; deadlines (due + 1 s, due + grace +
    lateness) sometimes fall exactly on an event time (deadlines at t come first)."""
    n = draw(hs.integers(min_value=1, max_value=30))
    events: list[Event] = []
    for i in range(n):
        cust = draw(hs.sampled_from(("c1", "c2", "c3")))
        at = (draw(hs.integers(min_value=0, max_value=90 * 24)) + 0.5) / 24
        inv = draw(hs.sampled_from(("i0", "i1", "i2", "i3")))
        amount = draw(hs.integers(min_value=1, max_value=500))
        eid = f"e{draw(hs.integers(min_value=0, max_value=5))}-{i}"  # ties broken by id
        kind = draw(hs.sampled_from(("issue", "issue", "pay", "pay", "adjust", "dispute",
                                     "resolve")))
        if kind == "issue":
            # whole days: deadlines can fall on event times; quarter hours: they cannot
            due = (at + draw(hs.integers(min_value=0, max_value=40))
                   + draw(hs.sampled_from((0.0, 0.25 / 24))))
            events.append(invoice(cust, inv, amount, at, due, event_id=eid))
        elif kind == "pay":
            named = draw(hs.lists(hs.sampled_from(("i0", "i1", "i2", "i3")), max_size=2,
                                  unique=True))
            events.append(payment(cust, amount, at, *named, event_id=eid))
        elif kind == "adjust":
            events.append(adjust(cust, inv, amount, at,
                                 draw(hs.sampled_from(("credit_note", "write_off"))),
                                 event_id=eid))
        elif kind == "dispute":
            events.append(dispute(cust, inv, at, event_id=eid))
        else:
            events.append(resolve(cust, inv, at, event_id=eid))
    return events


def _key(e: Event) -> tuple[float, int, str]:
    return (e.at.timestamp(), TYPE_ORDER[e.type], e.event_id)


def _outcome(e: Engine, steps: list[Step]) -> tuple[list[Any], dict[str, Any]]:
    trace = [(s.customer_id, s.status, s.event.event_id if s.event else None, s.at, s.late,
              [(lb.invoice_id, lb.y) for lb in s.labels],
              s.score.p_late if s.score else None) for s in steps]
    states = {cid: snapshot(state) for cid, state in e.store.items()}
    return trace, states


@settings(max_examples=100, deadline=None)
@given(stream(), hs.data())
def test_disorder_within_the_window_gives_the_sorted_result(events: list[Event],
                                                            data: Any) -> None:
    cfg = ScoringConfig(max_future_days=1000.0)
    # arrival order: event time plus a delay below the reorder window
    delays = [data.draw(hs.integers(min_value=0, max_value=int(R) - 1)) for _ in events]
    arrival = [e for _, _, e in sorted(
        ((e.at.timestamp() + d, i, e) for i, (e, d) in enumerate(zip(events, delays,
                                                                      strict=True))),
        key=lambda t: (t[0], t[1]))]

    disordered = engine(cfg, sources=("inv", "pay"), reorder_seconds=R)
    got: list[Step] = []
    for offset, event in enumerate(arrival):
        src = "pay" if event.type == "payment.received" else "inv"
        got += disordered.submit(event, src, offset)
    got += disordered.flush()

    reference = engine(cfg)
    want: list[Step] = []
    for event in sorted(events, key=_key):
        want += reference.submit(event, "s")
    want += reference.flush()

    assert not any(s.late for s in got)
    assert _outcome(disordered, got) == _outcome(reference, want)
    released = [s.event for s in got if s.event is not None]
    assert [_key(e) for e in released] == sorted(_key(e) for e in events)


def test_store_holds_customer_states() -> None:
    e = engine()
    e.submit(invoice("c1", "i1", 100, 0, 10), "s")
    assert isinstance(e.store["c1"], CustomerState) and e.store["c1"].conserved()


# --- restart from a commit point (what a worker does after a crash or a hand-over) -------------


def _two_topic_stream() -> list[tuple[str, Event]]:
    """A simulated stream split into two sources the way the worker's topics split it."""
    from models.tools.simulator import SimulationConfig, simulate
    from schemas.codec import dumps
    from schemas.events import decode_event

    out = []
    for doc in simulate(SimulationConfig(customers=25, days=120, seed=5)):
        event = decode_event(dumps(doc))
        out.append(("pay" if event.type == "payment.received" else "inv", event))
    return out


def _final(store: dict[str, CustomerState]) -> dict[str, Any]:
    from models.serialize import state_to_dict

    return {k: state_to_dict(s) for k, s in sorted(store.items())}


def test_an_engine_rebuilt_at_a_commit_point_ends_like_one_that_never_stopped() -> None:
    """Rebuilt from (states, model, stream time) with ``restore`` and re-fed from
    ``commit_point``, exactly as the worker does after a crash or a hand-over. Restoring the
    newest event time per input as well made this fail (late events): a worker bug it pins.
    """
    from models.serialize import state_from_dict, state_to_dict

    stream = _two_topic_stream()
    # one topic read ahead of the other, as a consumer fetching partitions unevenly does
    order = sorted(range(len(stream)), key=lambda i: (i // 40, stream[i][0] == "pay", i))
    by_source: dict[str, list[Event]] = {"inv": [], "pay": []}
    arrivals = []
    for i in order:
        src, event = stream[i]
        arrivals.append((src, len(by_source[src]), event))
        by_source[src].append(event)

    def fresh() -> Engine:
        return Engine(CFG, OnlineModel(prior=CFG.prior_late_rate), {}, sources=("inv", "pay"),
                      reorder_seconds=37 * HOUR)

    whole = fresh()
    for src, off, event in arrivals:
        whole.submit(event, src, off)
    whole.flush()

    for cut in (len(arrivals) // 3, len(arrivals) // 2, 2 * len(arrivals) // 3):
        first = fresh()
        nxt = {"inv": 0, "pay": 0}
        for src, off, event in arrivals[:cut]:
            first.submit(event, src, off)
            nxt[src] = off + 1
        resume = first.commit_point(nxt)
        store = {k: state_from_dict(state_to_dict(v)) for k, v in first.store.items()}
        second = Engine(CFG, OnlineModel.from_bytes(first.model.to_bytes()), store,
                        sources=("inv", "pay"), reorder_seconds=37 * HOUR)
        second.restore(first.stream_time)
        late = []
        # the next owner re-reads from the resume offsets, the topics interleaved otherwise
        again = [a for a in arrivals if a[1] >= resume[a[0]]]
        again.sort(key=lambda a: (a[0] == "inv", a[1]) if a[1] < nxt[a[0]] + 40 else (2, 0))
        for src, off, event in again:
            late += [s for s in second.submit(event, src, off) if s.late and s.status == OK]
        second.flush()
        assert late == [], f"cut {cut}: {len(late)} events applied late after the restart"
        assert _final(second.store) == _final(whole.store), f"cut {cut}"
