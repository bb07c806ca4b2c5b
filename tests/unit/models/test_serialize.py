"""Customer state <-> JSON-able dict (the worker's changelogged table) is lossless."""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest
from helpers import (
    customer_events,
    dispute,
    invoice,
    payment,
    processor,
    run,
    snapshot,
)
from hypothesis import given, settings

from models.invoice import INVOICE_FIELDS
from models.serialize import (
    dumps_packed,
    state_from_dict,
    state_from_packed,
    state_from_record,
    state_to_dict,
)
from models.state import CustomerState, Held, ring_ids


def through_json(s: CustomerState) -> CustomerState:
    return state_from_dict(orjson.loads(orjson.dumps(state_to_dict(s))))


def rich_state() -> CustomerState:
    """Every part of the state in use: open/late/disputed invoices, held cash, credit, memory."""
    proc = processor()
    s, _ = run([invoice("c1", "i1", 100, 0, 10), invoice("c1", "i2", "250.1234", 1, 31),
                invoice("c1", "i3", 80, 2, 32), dispute("c1", "i3", 3),
                payment("c1", "30.5", 4, "i2"), payment("c1", 80, 5, "future"),
                invoice("c1", "i4", 20, 6, 36), payment("c1", 20, 7, "i4"),
                payment("c1", 5, 40)], proc)
    s, _ = proc.apply(s, payment("c1", 1, 41))
    assert s is not None
    return s


def test_rich_state_round_trips_through_json() -> None:
    s = rich_state()
    assert s.held and s.p_hist and s.recent and s.closed and len(ring_ids(s.seen)) == 10
    assert s.invoices["i1"].label == 1 and s.invoices["i1"].x is None  # resolved late
    assert s.invoices["i3"].disputed and s.invoices["i3"].x is not None
    back = through_json(s)
    assert back == s
    assert state_to_dict(back) == state_to_dict(s)
    assert isinstance(back.seen, bytes) and isinstance(back.closed, bytes)
    assert state_to_dict(back)["seen"] == ring_ids(s.seen)
    assert back.recent == s.recent and isinstance(back.history, bytes)
    assert isinstance(back.invoices["i3"].x, bytes)  # packed in memory, 25 floats in JSON
    assert back.invoices["i3"].snapshot == s.invoices["i3"].snapshot
    assert isinstance(back.p_hist, tuple) and len(back.p_hist) % 2 == 0


def test_restored_state_behaves_like_the_original() -> None:
    s = rich_state()
    back = through_json(s)
    more = [invoice("c1", "future", 80, 50, 80), payment("c1", 300, 60), payment("c1", 2, 61)]
    a, steps_a = run(more, processor(), s)
    b, steps_b = run(more, processor(), back)
    assert a is not None and b is not None
    assert snapshot(a) == snapshot(b)
    assert [st.status for st in steps_a] == [st.status for st in steps_b]
    assert a.conserved() and b.conserved()


def test_missing_fields_take_their_defaults() -> None:
    assert state_from_dict({"customer_id": "c9"}) == CustomerState("c9")
    d = state_to_dict(CustomerState("c9"))
    assert orjson.loads(orjson.dumps(d)) == d


def test_state_to_dict_is_plain_json() -> None:
    d = state_to_dict(rich_state())
    assert orjson.loads(orjson.dumps(d)) == d
    assert isinstance(d["seen"], list) and isinstance(d["invoices"], list)


def through_packed(s: CustomerState) -> CustomerState:
    return state_from_packed(orjson.loads(dumps_packed({"state": s}))["state"])


def test_rich_state_round_trips_through_the_packed_shape() -> None:
    s = rich_state()
    back = through_packed(s)
    assert back == s
    assert isinstance(back.seen, bytes) and back.seen == s.seen
    assert back.history == s.history and back.recent_scores == s.recent_scores
    assert isinstance(back.invoices["i3"].x, bytes) and back.invoices["i3"].x == s.invoices["i3"].x
    assert isinstance(back.held[0], Held)
    assert state_to_dict(back) == state_to_dict(s)


def v2_shape(s: CustomerState) -> dict:  # type: ignore[type-arg]
    """The packed shape as version 2 wrote it (orjson walking the dataclasses it had then)."""
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    doc = state_to_dict(s)
    doc["invoices"] = {inv.invoice_id: {f: getattr(inv, f) for f in INVOICE_FIELDS}
                       for inv in s.invoices.values()}
    for row in doc["invoices"].values():
        row["x"] = None if row["x"] is None else b64(row["x"])
    doc["closed"], doc["seen"] = b64(s.closed), b64(s.seen)
    doc["held"] = [{"invoice_ids": h.invoice_ids, "units": h.units, "received": h.received}
                   for h in s.held]
    doc["p_hist"] = list(s.p_hist)
    doc["alert_at"] = s.alert_at
    return doc


def through_v2(s: CustomerState) -> CustomerState:
    return state_from_record(orjson.loads(orjson.dumps(v2_shape(s))), 2)


def test_packed_shape_keeps_defaults_and_refuses_foreign_values() -> None:
    assert through_packed(CustomerState("c9")) == CustomerState("c9")
    assert state_from_packed({"customer_id": "c9"}) == CustomerState("c9")
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps_packed({"state": object()})


@pytest.mark.parametrize("through", [through_json, through_packed, through_v2],
                         ids=["readable", "packed", "v2"])
@settings(max_examples=100, deadline=None)
@given(events=customer_events())
def test_round_trip_of_states_from_random_sequences(
        through: Callable[[CustomerState], CustomerState], events: list) -> None:  # type: ignore[type-arg]
    proc = processor()
    s = None
    for event in events:
        s, _ = proc.apply(s, event)
        assert through(s) == s
    assert s is not None
    assert state_to_dict(through(s)) == state_to_dict(s)
