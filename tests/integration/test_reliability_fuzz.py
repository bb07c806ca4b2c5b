"""Bad input against a live worker: hypothesis generates garbage, the worker keeps going.

Each example is one batch of messages (valid events mixed with garbage bytes, truncated
JSON, wrong types, missing fields, unknown types, NaN/infinite/negative/huge amounts,
far-past and far-future timestamps, oversized records and odd Unicode ids) produced to a
running worker. Pass criteria, all read from the broker and from /metrics over HTTP:
every bad message is in the dead-letter topic with a reason and its original bytes, every
good one is scored, consumed = ok + duplicate + dead-lettered, and the worker is still up.
"""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas.codec import loads
from schemas.records import MAX_ORIGINAL_BYTES
from streams.kafkaio import producer, read_all, route

pytestmark = pytest.mark.integration


def good(customer: str, n: int) -> dict:
    return {"schema_version": 1, "type": "invoice.issued", "event_id": f"fz-{uuid.uuid4().hex}",
            "customer_id": customer, "invoice_id": f"INV-{uuid.uuid4().hex[:12]}",
            "amount": "120.00", "currency": "EUR",
            "issued_at": f"2024-03-{n % 27 + 1:02d}T10:00:00Z", "due_at": "2024-05-30T00:00:00Z"}


def mutate(doc: dict, field: str, value: object) -> bytes:
    bad = dict(doc)
    if value is _DROP:
        bad.pop(field, None)
    else:
        bad[field] = value
    return orjson.dumps(bad)


_DROP = object()
BAD_VALUES = {
    "amount": st.sampled_from(["NaN", "Infinity", "-5", "0", "1e400", "99999999999999999",
                               -1, 0, "12.123456", [], {}, True]),
    "issued_at": st.sampled_from(["1970-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
                                  "2024-03-01T10:00:00", "yesterday", 20240301, None]),
    "customer_id": st.sampled_from(["c 1", "cust\u00e9", "\U0001f600", "", "x" * 200, 7]),
    "type": st.sampled_from(["invoice.refunded", "", 3, None]),
    "currency": st.sampled_from(["eur", "EURO", "", 1]),
    "event_id": st.sampled_from([_DROP, "", "a\nb"]),
}


@st.composite
def bad_message(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "truncated", "field", "not_object", "oversized"]))
    base = good("FZ1", draw(st.integers(0, 100)))
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200).filter(lambda b: b.strip() != b""))
    if kind == "truncated":
        raw = orjson.dumps(base)
        return raw[: draw(st.integers(1, len(raw) - 1))]
    if kind == "not_object":
        return orjson.dumps(draw(st.sampled_from([[1, 2], "text", 3.5, None, True])))
    if kind == "oversized":  # over the codec's 1,000,000-byte guard, under the producer's 1 MiB
        return orjson.dumps({**base, "terms": "x" * 1_000_100})
    field = draw(st.sampled_from(sorted(BAD_VALUES)))
    value = draw(BAD_VALUES[field])
    return mutate(base, field, value)


def consumed(worker) -> dict[str, float]:
    m = worker.scrape()
    out = {"ok": 0.0, "duplicate": 0.0, "dead_lettered": 0.0}
    for k, v in m.items():
        if k.startswith("arscore_events_total{"):
            out[k.split('outcome="')[1].split('"')[0]] += v
    return out


@pytest.fixture
def fuzz_worker(make_worker):
    return make_worker(ARSCORE_IDLE_SECONDS="1").start()


@settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(bad=st.lists(bad_message(), min_size=20, max_size=40))
def test_bad_input_is_dead_lettered_and_good_input_scored(fuzz_worker, bad: list[bytes]) -> None:
    worker = fuzz_worker
    before = consumed(worker)
    dead_before = len(read_all(worker.settings, worker.settings.deadletter_topic, idle=0.5))
    goods = [orjson.dumps(good(f"FZ{uuid.uuid4().hex[:6]}", i)) for i in range(10)]
    batch: list[bytes] = []
    for i, message in enumerate(bad):  # good and bad interleaved, each sent once
        batch.append(message)
        if i < len(goods):
            batch.append(goods[i])
    prod = producer(worker.settings, max_request_size=2 << 20)
    futures = []
    for message in batch:  # bytes exactly as generated (no line handling)
        topic, key = route(message, worker.settings)
        futures.append(prod.send(topic, key=key, value=message))
    prod.flush()
    for future in futures:
        future.get(timeout=10)  # a refused send fails the test here, not silently
    prod.close()
    expected = len(bad) + len(goods)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        now = consumed(worker)
        if sum(now.values()) - sum(before.values()) >= expected:
            break
        time.sleep(0.3)
    time.sleep(2.0)  # anything extra would show up now
    after = consumed(worker)
    delta = {k: after[k] - before[k] for k in after}
    # counters add up, and each message is counted once
    assert sum(delta.values()) == expected, delta
    assert delta["dead_lettered"] == len(bad), delta
    assert delta["ok"] == len(goods), delta
    # every bad message is in the dead-letter topic, with a reason and its original bytes
    letters = [loads(v) for _, v in read_all(worker.settings, worker.settings.deadletter_topic,
                                             idle=1.0)][dead_before:]
    assert len(letters) == len(bad)
    assert all(d["reason"] for d in letters)
    originals = sorted(base64.b64decode(d["original_b64"]) for d in letters
                       if not d.get("extra", {}).get("original_truncated"))
    assert originals == sorted(m for m in bad if len(m) <= MAX_ORIGINAL_BYTES)
    for d in letters:  # an oversized record is named by size and hash; it stays in its topic
        if d.get("extra", {}).get("original_truncated"):
            assert d["extra"]["original_size"] > MAX_ORIGINAL_BYTES
            assert d["source_offset"] is not None
    # the good ones were scored, and the worker is still up
    scored = {loads(v)["customer_id"] for _, v in read_all(worker.settings,
                                                          worker.settings.scores_topic, idle=1.0)}
    assert {loads(g)["customer_id"] for g in goods} <= scored
    assert worker.procs[-1].poll() is None


def test_an_event_keyed_by_something_else_is_rekeyed_then_scored(fuzz_worker) -> None:
    """Keyed by another id, an event is sent again under its customer_id before it touches
    state; the copy is then consumed and scored like any other event."""
    worker = fuzz_worker
    events = [orjson.dumps(good(f"RK{uuid.uuid4().hex[:6]}", i)) for i in range(3)]
    prod = producer(worker.settings)
    for message in events:
        topic, _ = route(message, worker.settings)
        prod.send(topic, key=b"not-the-customer", value=message).get(timeout=10)
    prod.close()
    customers = {loads(m)["customer_id"] for m in events}
    deadline = time.monotonic() + 30
    scored: set[str] = set()
    while time.monotonic() < deadline and not customers <= scored:
        time.sleep(0.5)
        scored = {loads(v)["customer_id"] for _, v in
                  read_all(worker.settings, worker.settings.scores_topic, idle=0.5)}
    assert customers <= scored
    topic = worker.settings.invoices_topic
    copies = [(k, v) for k, v in read_all(worker.settings, topic, idle=0.5) if v in events]
    assert sorted(copies) == sorted([(b"not-the-customer", m) for m in events]
                                    + [(loads(m)["customer_id"].encode(), m) for m in events])
