"""The per-event shortcuts give exactly what the plain computations give."""

from __future__ import annotations

import copy
import math
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from models import invoice as iv
from models import processor as processor_module
from models import state as st
from models.config import DAY, ScoringConfig
from models.engine import Engine
from models.features import OpenBook, feature_list, features
from models.model import OnlineModel
from models.money import to_decimal, to_str
from models.processor import iso
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import decode_event
from schemas.records import to_dict

CFG = ScoringConfig()


def _replay(events: list[Any]) -> tuple[list[Any], dict[str, st.CustomerState]]:
    store: dict[str, st.CustomerState] = {}
    engine = Engine(CFG, OnlineModel(prior=CFG.prior_late_rate), store, sources=("s",),
                    reorder_seconds=6 * 3600)
    out = []
    for e in events:
        out += engine.submit(e, "s")
    out += engine.flush()
    return [(s.status, s.score and to_dict(s.score), [to_dict(a) for a in s.alerts])
            for s in out], store


@pytest.fixture(scope="module")
def events() -> list[Any]:
    cfg = SimulationConfig(customers=60, days=200, seed=5)
    return [decode_event(dumps(e)) for e in simulate(cfg)]


def test_reusing_the_issue_snapshot_changes_no_output(events: list[Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_store = _replay(events)
    original = processor_module.Processor._issue

    def no_reuse(self: Any, s: st.CustomerState, event: Any, at: float) -> Any:
        return original(self, s, event, at)[0], None

    monkeypatch.setattr(processor_module.Processor, "_issue", no_reuse)
    plain, plain_store = _replay(events)
    assert fast == plain
    assert fast_store == plain_store


def _plain_book(s: st.CustomerState, now: float) -> tuple[int, int, float, int]:
    """Open, overdue, oldest days past due and money at risk, walked plainly (the oracle)."""
    grace = CFG.grace_days * DAY
    overdue = sum(inv.open for inv in s.invoices.values() if now > inv.due)
    max_dpd = max([(now - inv.due) / DAY for inv in s.invoices.values()] + [0.0])
    at_risk = 0.0
    for inv in s.invoices.values():
        at_risk += inv.open * (1.0 if now > inv.due + grace else inv.p_late)
    return s.open_units, overdue, max_dpd, round(at_risk / 100) * 100


def test_open_book_matches_a_plain_walk_and_adds_like_a_pass(
        events: list[Any]) -> None:
    _, store = _replay(events)
    now = max(s.last_event for s in store.values()) + 3 * 86_400.0
    checked = 0
    for s in store.values():
        book = OpenBook(s, now, CFG.grace_days * DAY)
        assert (book.open, book.overdue, book.max_dpd, book.priority) == _plain_book(s, now)
        if not s.invoices:
            continue
        *_, last = s.invoices.values()
        fewer = copy.deepcopy(s)
        fewer.invoices = fewer.invoices.without(fewer.invoices[last.invoice_id])
        grown = OpenBook(fewer, now, CFG.grace_days * DAY)
        grown.add(last)
        assert [getattr(grown, k) for k in OpenBook.__slots__] == \
               [getattr(book, k) for k in OpenBook.__slots__]
        assert feature_list(s, now, CFG, book=grown) == list(features(s, now, CFG))
        checked += 1
    assert checked > 10


@given(hs.integers(min_value=-10**15, max_value=10**15))
def test_to_str_is_the_decimal_text(units: int) -> None:
    assert to_str(units) == f"{to_decimal(units):f}"
    assert Decimal(to_str(units)) * 10_000 == units


@given(hs.one_of(hs.integers(min_value=-2 * 10**9, max_value=4 * 10**9).map(float),
                 hs.floats(min_value=-2e9, max_value=4e9, allow_nan=False)))
def test_iso_is_datetime_isoformat(ts: float) -> None:
    assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _bits(values: Any) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@given(hs.lists(hs.one_of(hs.just(0.0), hs.just(-0.0), hs.floats(allow_nan=True)),
                min_size=0, max_size=40))
def test_pack_round_trips_bit_for_bit(values: list[float]) -> None:
    raw = iv.pack(values)
    assert _bits(iv.unpack(raw)) == _bits(values)
    assert len(raw) <= 1 + (len(values) + 7) // 8 + 8 * len(values)


def test_pack_leaves_out_zeros() -> None:
    x = [0.0] * 25
    x[3], x[7] = 1.5, math.inf
    assert len(iv.pack(x)) == 1 + 4 + 16


@given(hs.lists(hs.integers(min_value=0, max_value=2**63 - 1), max_size=12),
       hs.integers(min_value=0, max_value=2**63 - 1))
def test_id_rings_find_whole_entries_only(ids: list[int], probe: int) -> None:
    ring = st.to_ring(ids)
    assert st.ring_ids(ring) == ids
    key = st.to_ring([probe])
    assert st.ring_has(ring, key) == (probe in ids)
    # a key straddling two entries is not an entry
    if len(ids) >= 2:
        straddle = ring[4:12]
        assert st.ring_has(ring, straddle) == (st.ring_ids(straddle)[0] in ids)


def test_id_ring_keeps_the_newest() -> None:
    ring = b""
    for k in range(10):
        ring = st.ring_add(ring, st.id_key(f"e{k}"), 4)
    assert [st.ring_has(ring, st.id_key(f"e{k}")) for k in range(10)] == [False] * 6 + [True] * 4


def _track_p_reference(hist: list[tuple[float, float]], p: float, now: float,
                       window: float) -> tuple[float, list[tuple[float, float]]]:
    """track_p as it was written over a list of (t, p) pairs."""
    kept = [(t, q) for t, q in hist if t >= now - window]
    low = min([q for _, q in kept], default=p)
    while kept and kept[-1][1] >= p:
        kept.pop()
    kept.append((now, p))
    return low, kept if len(kept) <= 4 else [kept[0], *kept[-3:]]


@given(hs.lists(hs.tuples(hs.floats(0, 100), hs.floats(0, 1)), max_size=40))
def test_track_p_on_a_flat_tuple_is_the_pair_list_algorithm(steps: list[tuple[float, float]]) -> None:
    from models.alerts import track_p

    s = st.CustomerState("c1")
    hist: list[tuple[float, float]] = []
    window = CFG.spike_window_days * 86_400.0
    for day, p in steps:
        now = day * 86_400.0
        low, hist = _track_p_reference(hist, p, now, window)
        assert track_p(s, p, now, CFG) == low
        assert s.p_hist == tuple(v for pair in hist for v in pair)
