"""In-process replay: determinism, dead letters for bad and refused input."""

from __future__ import annotations

from typing import Any

from helpers import invoice, payment

from models.config import ScoringConfig
from models.model import OnlineModel
from models.tools.replay import Replay
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import encode_event
from schemas.records import AlertRecord, DeadLetter, ScoreRecord

CFG = ScoringConfig()
SIM = SimulationConfig(customers=25, days=150, seed=4, duplicate_rate=0.05, disorder_rate=0.1,
                       max_disorder_hours=6.0, dispute_rate=0.05, partial_rate=0.3)


def lines() -> list[bytes]:
    out = [dumps(event) for event in simulate(SIM)]
    out.insert(10, b'{"schema_version": 1, "type": "refund"}')  # undecodable
    out.insert(20, b"")  # blank lines are skipped
    out.insert(30, b"not json at all\n")
    return out


def replay(raw_lines: list[bytes], **kw: Any) -> tuple[list[Any], Replay]:
    r = Replay(CFG, [OnlineModel(prior=CFG.prior_late_rate)], reorder_seconds=8 * 3600.0, **kw)
    out: list[Any] = []
    for n, raw in enumerate(raw_lines):
        out += r.feed(raw, n)
    out += r.finish()
    return out, r


def test_two_replays_of_the_same_lines_are_identical() -> None:
    raw = lines()
    first, r1 = replay(raw)
    second, r2 = replay(raw)
    assert first == second
    kinds = {kind for kind, _ in first}
    assert kinds >= {"score", "deadletter"}
    assert r1.stores[0].keys() == r2.stores[0].keys() and len(r1.stores[0]) == SIM.customers
    assert r1.stores[0] == r2.stores[0]
    s1, s2 = r1.summary(), r2.summary()
    for volatile in ("seconds", "events_per_second"):
        s1.pop(volatile)
        s2.pop(volatile)
    assert s1 == s2
    assert s1["events"]["duplicate"] > 0 and s1["events"]["dead_lettered"] >= 2
    assert s1["model"]["labels"] > 50
    assert r1.first_alerts() == r2.first_alerts()
    assert all(state.conserved() for state in r1.stores[0].values())


def test_outputs_have_the_record_types() -> None:
    out, _ = replay(lines()[:200])
    for kind, record in out:
        expected = {"score": ScoreRecord, "alert": AlertRecord, "deadletter": DeadLetter}[kind]
        assert isinstance(record, expected)


def test_bad_and_refused_lines_become_dead_letters_with_their_position() -> None:
    raw = [encode_event(invoice("c1", "i1", 100, 0, 30)),
           b"{broken",
           encode_event(payment("c1", 10, 1, currency="USD")),
           encode_event(invoice("c1", "i1", 100, 2, 32))]
    out, r = replay(raw, clock=lambda: "2025-06-01T00:00:00Z")
    letters = [rec for kind, rec in out if kind == "deadletter"]
    assert [(d.stage, d.source_offset) for d in letters] == [
        ("decode", 1), ("apply", 2), ("apply", 3)]
    decode, currency, reissue = letters
    assert decode.original_text == "{broken" and "JSON" in decode.reason
    assert "USD" in currency.reason and currency.customer_id == "c1"
    assert currency.event_id is not None and currency.failed_at == "2025-06-01T00:00:00Z"
    assert "already issued" in reissue.reason
    assert r.counts.outcomes["rejected"] == 2 and r.counts.outcomes["ok"] == 1
