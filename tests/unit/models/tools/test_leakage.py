"""The leakage guard: every snapshot is the invoice's features as of issue."""

from __future__ import annotations

import copy
from array import array
from typing import Any

import pytest
from backtest_events import CFG, T0, issued, paid, sim_events

import models.processor as processor_module
from models import state as st
from models import transitions as tr
from models.config import DAY, ScoringConfig
from models.features import FEATURE_NAMES, features
from models.model import OnlineModel
from models.processor import Processor
from models.tools import leakage
from schemas.events import Event, PaymentReceived

# --- the leakage guard ------------------------------------------------------------------------


def test_snapshot_is_the_features_at_issue_not_after() -> None:
    """Build features at issue, apply later payments, and the snapshot has not moved."""
    proc = Processor(CFG, OnlineModel())
    s, _ = proc.apply(None, issued("I0", 0))
    s, _ = proc.apply(s, paid("I0", 50))                   # a late payer so far
    at = T0 + 60 * DAY
    before = copy.deepcopy(s)
    s, _ = proc.apply(s, issued("I1", 60, due_in=30, amount="500"))
    tr.advance(before, at, CFG)
    tr.touch(before, at, "EUR")
    expected = features(before, at, CFG, 500 * 10_000, 30.0)
    snapshot = s.invoices["I1"].snapshot
    assert snapshot is not None
    assert list(snapshot) == list(expected)
    # later events change the customer, not the snapshot
    s, _ = proc.apply(s, issued("I2", 70))
    s, _ = proc.apply(s, paid("I2", 75))
    s, step = proc.apply(s, paid("I1", 120, amount="500"))
    label = next(lb for lb in step.labels if lb.invoice_id == "I1")
    assert (label.y, list(label.x)) == (1, list(expected))
    assert list(features(s, at, CFG, 500 * 10_000, 30.0)) != list(expected)
    assert leakage.features_as_of_issue(before, issued("I1", 60, amount="500"), CFG) is not None


def test_audit_passes_on_a_simulated_stream() -> None:
    audit = leakage.audit_snapshots(sim_events(), CFG)
    assert audit.checked > 300
    assert audit.ok, audit.mismatches[:3]


def aliasing_features() -> Any:
    """Leaky: one buffer per customer, overwritten at every call (snapshots follow the state)."""
    buffers: dict[str, array] = {}  # type: ignore[type-arg]

    def leaky(state: st.CustomerState, now: float, cfg: ScoringConfig, amount: int | None = None,
              terms_days: float | None = None, book: Any = None) -> array:  # type: ignore[type-arg]
        x = features(state, now, cfg, amount, terms_days, book)
        buf = buffers.setdefault(state.customer_id, array("d", x))
        buf[:] = x
        return buf

    return leaky


def oracle_features(events: list[Event]) -> Any:
    """Leaky: knows when the customer will next pay (read from the whole stream)."""
    pays: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e, PaymentReceived):
            pays.setdefault(e.customer_id, []).append(e.at.timestamp())
    slot = FEATURE_NAMES.index("days_since_payment_log")

    def leaky(state: st.CustomerState, now: float, cfg: ScoringConfig, amount: int | None = None,
              terms_days: float | None = None, book: Any = None) -> array:  # type: ignore[type-arg]
        x = features(state, now, cfg, amount, terms_days, book)
        upcoming = [t for t in pays.get(state.customer_id, []) if t > now]
        x[slot] = (min(upcoming) - now) / DAY if upcoming else 0.0
        return x

    return leaky


def test_audit_catches_a_feature_that_peeks_at_the_future(monkeypatch: pytest.MonkeyPatch) -> None:
    events = sim_events(customers=10, days=120)
    monkeypatch.setattr(processor_module, "features", oracle_features(events))
    audit = leakage.audit_snapshots(events, CFG)
    assert not audit.ok
    assert len(audit.mismatches) > audit.checked // 4
    assert all(diff == ["days_since_payment_log"] for *_, diff in audit.mismatches)


def test_a_feature_buffer_shared_across_calls_cannot_reach_the_snapshot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots are packed (copied) at issue, so an aliased buffer leaks nothing.

    (Before snapshots were packed, this aliasing was a leak the audit had to catch.)
    """
    events = sim_events(customers=10, days=120)
    monkeypatch.setattr(processor_module, "features", aliasing_features())
    audit = leakage.audit_snapshots(events, CFG)
    assert audit.ok and audit.checked > 10
