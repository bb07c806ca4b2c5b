"""The strongest test: the Kafka path and ``arscore replay`` agree on every customer.

The same simulated file (with duplicates, out-of-order events and two bad lines) goes
through a real broker and a real worker, and through the in-process replay. The
latest score per customer, every alert, and the dead letters must match.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.codec import loads
from streams.kafkaio import produce_lines, read_all

pytestmark = pytest.mark.integration

REORDER = str(37 * 3600)  # the simulator delays events by at most 36 h


def simulate(path: Path, customers: int, days: int, seed: int) -> None:
    subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--customers", str(customers),
                    "--days", str(days), "--seed", str(seed), "-o", str(path)], check=True,
                   capture_output=True)


def replay(path: Path, out: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path), "-o", str(out),
                    "--dead-letter", str(out) + ".dl"], check=True, capture_output=True, env=env)


def latest_scores(records: list[tuple[bytes | None, bytes]]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for _key, value in records:
        doc = loads(value)
        latest[doc["customer_id"]] = doc
    return latest


def wait_drained(worker, expected: int, timeout: float = 90.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = worker.scrape()
        consumed = sum(v for k, v in m.items() if k.startswith("arscore_events_total{"))
        if consumed >= expected and m.get("arscore_reorder_buffered_events", 1) == 0:
            return m
        time.sleep(0.5)
    raise AssertionError(f"worker consumed {consumed} of {expected} events")


def test_kafka_path_equals_replay(make_worker, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, customers=120, days=150, seed=11)
    with open(events, "ab") as fh:
        fh.write(b"not json at all\n")
        fh.write(b'{"schema_version": 1, "type": "invoice.issued", "customer_id": "C1"}\n')
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]

    worker = make_worker(ARSCORE_REORDER_SECONDS=REORDER).start()
    for _ in produce_lines(worker.settings, lines):
        pass
    metrics = wait_drained(worker, expected=len(lines))
    time.sleep(1.5)  # let the last sends flush

    out = tmp_path / "replay.jsonl"
    replay(events, out, worker.env)
    replayed = [loads(line) for line in out.read_bytes().splitlines()]
    r_scores = latest_scores([(None, _enc(d["value"])) for d in replayed
                              if d["topic"] == worker.settings.scores_topic])
    r_alerts = sorted(d["value"]["alert_id"] for d in replayed
                      if d["topic"] == worker.settings.alerts_topic)

    k_scores = latest_scores(read_all(worker.settings, worker.settings.scores_topic))
    k_alerts = sorted(loads(v)["alert_id"] for _, v in
                      read_all(worker.settings, worker.settings.alerts_topic))
    dead = [loads(v) for _, v in read_all(worker.settings, worker.settings.deadletter_topic)]

    assert len(r_scores) >= 100
    assert k_scores.keys() == r_scores.keys()
    mismatched = [c for c in r_scores if k_scores[c] != r_scores[c]]
    assert not mismatched, [(c, _diff(k_scores[c], r_scores[c])) for c in mismatched[:3]]
    assert k_alerts == r_alerts and len(k_alerts) > 0
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 2, reasons
    assert any("not valid JSON" in r for r in reasons)
    assert {d["original_b64"] for d in dead}  # original bytes kept
    # counters add up: consumed = ok + duplicate + dead-lettered, all scraped over HTTP
    consumed = sum(v for k, v in metrics.items() if k.startswith("arscore_events_total{"))
    assert consumed == len(lines)
    assert metrics['arscore_events_total{outcome="dead_lettered",type="unknown"}'] == 2
    assert metrics["arscore_customers_tracked"] == len(k_scores)


def _enc(doc: dict) -> bytes:
    from schemas.codec import dumps

    return dumps(doc)


def _diff(a: dict, b: dict) -> dict:
    return {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
