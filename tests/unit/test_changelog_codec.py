"""The worker's changelog records: the packed state shape it writes, and the readable
shape records written before it still use, both recover the same state."""

from __future__ import annotations

import math

from test_serialize import rich_state

from models.serialize import state_to_dict
from schemas.codec import dumps
from streams.service import Commit, StateRecord, _StateCodec
from streams.transport import _is_delivery


def test_state_records_round_trip_in_the_packed_shape() -> None:
    codec = _StateCodec()
    s = rich_state()
    raw = codec._dumps(StateRecord("b1", s))
    assert b'"v":2' in raw
    back = codec._loads(raw)
    assert back.batch == "b1" and back.state == s


def test_records_in_the_earlier_readable_shape_still_recover() -> None:
    s = rich_state()
    old = dumps({"batch": "b0", "state": state_to_dict(s)})  # what workers wrote before v2
    back = _StateCodec()._loads(old)
    assert back.batch == "b0" and back.state == s


def test_commit_records_round_trip() -> None:
    codec = _StateCodec()
    c = Commit("b2", 3, b"\x00model", -math.inf, {"ar.invoices:3": 7}, seq=4, generation=2)
    back = codec._loads(codec._dumps(c))
    assert back == c


def test_the_delivery_fast_path_recognises_fausts_call() -> None:
    """Faust's drain loop passes ``suspend_flow.wait()``; if mode renames it the fast path
    silently stops applying (still correct, slower): this test says so."""
    import asyncio

    from faust.transport import consumer as faust_consumer

    assert faust_consumer.Event is asyncio.Event  # the class Faust's suspend_flow is made of

    class FakeConsumer:
        suspend_flow = asyncio.Event()

    async def deliver() -> None:
        return None

    waiting, work = FakeConsumer.suspend_flow.wait(), deliver()
    try:
        assert _is_delivery(FakeConsumer(), (work, waiting), None)
        assert not _is_delivery(FakeConsumer(), (work, waiting), 1.0)
        FakeConsumer.suspend_flow.set()
        assert not _is_delivery(FakeConsumer(), (work, waiting), None)
    finally:
        waiting.close()
        work.close()
