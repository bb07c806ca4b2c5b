"""Processor steps (predict at issue, learn on resolution, score records) and the online model."""

from __future__ import annotations

import pickle
import random
from array import array

import pytest
from helpers import (
    customer_events,
    invoice,
    payment,
    processor,
    run,
    snapshot,
    ts,
    units,
)
from hypothesis import given, settings
from hypothesis import strategies as hs

from models import state as st
from models.config import DAY, ScoringConfig
from models.features import FEATURE_NAMES, N_FEATURES, features
from models.model import CHECKPOINT_MAGIC, OnlineModel
from models.processor import DUPLICATE, OK, REJECTED
from models.serialize import state_from_dict, state_to_dict

CFG = ScoringConfig()
LATE_RATIO = FEATURE_NAMES.index("late_ratio")


def copy_state(s: st.CustomerState) -> st.CustomerState:
    return state_from_dict(snapshot(s))


# --- features at prediction time only ---------------------------------------------------------


def test_snapshot_at_issue_equals_features_of_the_state_just_before_issue() -> None:
    proc = processor()
    history = [invoice("c1", "old1", 100, 0, 30), invoice("c1", "old2", 300, 5, 20),
               payment("c1", 50, 10, "old2"), payment("c1", 100, 29, "old1"),
               invoice("c1", "old3", 75, 30, 60), payment("c1", 5, 50)]
    s, _ = run(history, proc)
    # old1 was paid on time; old2 (due 20) resolved late at its deadline (+6 days), still open
    assert s.n_labels == 2 and s.n_late == 1 and s.invoices["old2"].label == 1
    before = copy_state(s)
    issued, due, amount = 55.0, 85.0, 250
    expected = features(before, ts(issued), CFG, units(amount), (ts(due) - ts(issued)) / DAY)
    expected_p = proc.model.predict(expected)

    s, steps = run([invoice("c1", "new", amount, issued, due)], proc, s)
    inv = s.invoices["new"]
    assert inv.snapshot == expected and inv.p_late == expected_p
    # the future: payments of this and other invoices, a late resolution of another one
    s, steps = run([payment("c1", 75, 60, "old3"), payment("c1", 500, 90.5, "new", "old2")],
                   proc, s)
    [label] = [lb for step in steps for lb in step.labels if lb.invoice_id == "new"]
    assert label.x == expected and label.p_at_issue == expected_p
    assert label.y == 1  # paid day 90.5, due 85 + 5 grace
    assert features(s, ts(issued), CFG, units(amount), 30.0) != expected  # the state did move


def test_held_cash_applied_at_issue_is_not_in_the_snapshot() -> None:
    s, _ = run([invoice("c1", "i0", 100, 0, 10), payment("c1", 100, 1, "i0"),
                payment("c1", 500, 2, "i1")])
    before = copy_state(s)
    s, steps = run([invoice("c1", "i1", 500, 3, 33)], state=s)
    [label] = steps[0].labels
    assert label.x == features(before, ts(3), CFG, units(500), 30.0)
    assert label.y == 0


def test_cold_start_customer_gets_the_prior_and_low_confidence() -> None:
    cfg = ScoringConfig(prior_late_rate=0.3, min_labels_confident=3)
    proc = processor(cfg)
    s, step = proc.apply(None, invoice("c1", "i1", 100, 0, 30))
    assert features(st.CustomerState("c1"), 0.0, cfg)[LATE_RATIO] == pytest.approx(0.3)
    snapshot = s.invoices["i1"].snapshot
    assert snapshot is not None and snapshot[LATE_RATIO] == pytest.approx(0.3)
    score = step.score
    assert score is not None
    assert score.low_confidence is True
    assert score.p_late == pytest.approx(0.3)
    assert score.labels_seen == 0 and score.band == "medium"
    assert score.open_amount == "100.00" and score.currency == "EUR" and score.open_invoices == 1
    # three resolved invoices later the score is confident
    for k in range(2, 5):
        s, step = proc.apply(s, invoice("c1", f"i{k}", 100, k, 30 + k))
    for k in (1, 2, 3):
        s, step = proc.apply(s, payment("c1", 100, 10 + k, f"i{k}"))
        assert step.score is not None
        assert step.score.low_confidence is (k < 3)
    assert s.n_labels == 3 and step.score.labels_seen == 3


def test_late_ratio_is_smoothed_towards_the_prior() -> None:
    cfg = ScoringConfig(prior_late_rate=0.3)
    s, _ = run([invoice("c1", "i1", 100, 0, 10), payment("c1", 100, 40, "i1")],
               processor(cfg))
    assert s.n_labels == 1 and s.n_late == 1
    assert features(s, ts(41), cfg)[LATE_RATIO] == pytest.approx((1 + 2 * 0.3) / 3)


def test_score_record_reports_open_overdue_and_priority() -> None:
    s, steps = run([invoice("c1", "i1", 100, 0, 10), invoice("c1", "i2", 50, 1, 31),
                    payment("c1", "20.25", 12, "i1")])
    score = steps[-1].score
    assert score is not None
    assert score.open_amount == "129.75" and score.overdue_amount == "79.75"
    assert score.open_invoices == 2 and score.event_id == steps[-1].event.event_id
    at_risk = units("79.75") * s.invoices["i1"].p_late + units(50) * s.invoices["i2"].p_late
    assert abs(units(score.priority) - at_risk) <= 50  # open x p_late, to the cent
    assert score.scored_at.startswith("2025-01-13T")


def test_rejected_step_still_reports_labels_it_caused_to_be_learned() -> None:
    proc = processor()
    s, _ = run([invoice("c1", "i1", 100, 0, 10)], proc)
    s, step = proc.apply(s, payment("c1", 5, 30, currency="USD"))
    assert step.status == REJECTED
    assert proc.model.labels_seen == 1  # the deadline passed on the way: learned
    assert [lb.invoice_id for lb in step.labels] == ["i1"]


# --- duplicates anywhere change nothing -----------------------------------------------------


@hs.composite
def with_duplicates(draw):  # type: ignore[no-untyped-def]
    events = draw(customer_events(max_size=15))
    n = draw(hs.integers(min_value=1, max_value=15))
    noisy = list(events)
    for _ in range(n):
        pos = draw(hs.integers(min_value=1, max_value=len(noisy)))
        # a copy of an event already applied at that point (originals keep their order)
        noisy.insert(pos, draw(hs.sampled_from(noisy[:pos])))
    return events, noisy


def _final(events: list) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    proc = processor()
    s, steps = run(events, proc)
    assert s is not None
    return snapshot(s), [step.status for step in steps]


@settings(max_examples=100, deadline=None)
@given(with_duplicates())
def test_duplicates_inserted_anywhere_leave_the_state_unchanged(pair) -> None:  # type: ignore[no-untyped-def]
    events, noisy = pair
    clean, statuses = _final(events)
    dirty, noisy_statuses = _final(noisy)
    assert noisy_statuses.count(DUPLICATE) == len(noisy) - len(events)
    assert [x for x in noisy_statuses if x != DUPLICATE] == statuses
    assert dirty == clean


# --- the online model ---------------------------------------------------------------------


def rand_x(rng: random.Random) -> array:  # type: ignore[type-arg]
    return array("d", (rng.uniform(-2, 2) for _ in range(N_FEATURES)))


def trained(n: int = 40, seed: int = 1) -> OnlineModel:
    rng = random.Random(seed)
    m = OnlineModel(prior=0.3)
    for _ in range(n):
        x = rand_x(rng)
        m.learn(x, int(x[0] > 0), p_at_issue=m.predict(x))
    return m


def test_model_predicts_the_prior_without_labels() -> None:
    rng = random.Random(0)
    for prior in (0.1, 0.3, 0.7):
        m = OnlineModel(prior=prior)
        for _ in range(5):
            assert m.predict(rand_x(rng)) == pytest.approx(prior)
    assert OnlineModel().progressive.summary()["labels"] == 0.0


def test_learning_counts_labels_and_updates_progressive_metrics() -> None:
    m = OnlineModel(prior=0.3)
    x = array("d", [1.0] * N_FEATURES)
    m.learn(x, 1, p_at_issue=0.8)
    m.learn(x, 0, p_at_issue=0.4)
    assert m.labels_seen == 2
    summary = m.progressive.summary()
    assert summary["labels"] == 2.0 and summary["late_rate"] == 0.5
    assert summary["brier"] == pytest.approx(((0.8 - 1) ** 2 + 0.4 ** 2) / 2)
    assert summary["log_loss"] > 0
    m2 = trained(200)
    assert m2.labels_seen == 200
    assert m2.progressive.summary()["roc_auc"] > 0.6  # learnable signal: x[0] > 0


def test_model_moves_away_from_the_prior_as_labels_arrive() -> None:
    m = trained(200)
    rng = random.Random(5)
    ps = [m.predict(rand_x(rng)) for _ in range(20)]
    assert max(ps) - min(ps) > 0.01
    assert all(0.0 < p < 1.0 for p in ps)


def test_checkpoint_round_trip_predicts_identically() -> None:
    m = trained(60)
    m2 = OnlineModel.from_bytes(m.to_bytes())
    assert m2.labels_seen == m.labels_seen and m2.kind == m.kind and m2.prior == m.prior
    assert m2.version == m.version
    assert m2.progressive.summary() == m.progressive.summary()
    rng = random.Random(9)
    xs = [rand_x(rng) for _ in range(10)]
    assert [m2.predict(x) for x in xs] == [m.predict(x) for x in xs]
    for x in xs:  # and they keep learning the same way
        m.learn(x, 1, 0.5)
        m2.learn(x, 1, 0.5)
    assert [m2.predict(x) for x in xs] == [m.predict(x) for x in xs]
    assert OnlineModel.from_bytes(m.to_bytes(), origin="warm").version.endswith(":warm")


@pytest.mark.parametrize("raw", [
    b"", b"garbage", b"\x80\x04K\x05.", CHECKPOINT_MAGIC, CHECKPOINT_MAGIC + b"garbage",
    CHECKPOINT_MAGIC + b"\x80\x05\x95",
])
def test_from_bytes_rejects_garbage_with_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        OnlineModel.from_bytes(raw)


def test_from_bytes_rejects_truncated_checkpoint_and_other_feature_sets() -> None:
    raw = trained(5).to_bytes()
    with pytest.raises(ValueError):
        OnlineModel.from_bytes(raw[: len(raw) // 2])
    state = pickle.loads(raw[len(CHECKPOINT_MAGIC):])
    state["features"] = ("something", "else")
    with pytest.raises(ValueError, match="feature"):
        OnlineModel.from_bytes(CHECKPOINT_MAGIC + pickle.dumps(state))


@pytest.mark.parametrize("payload", [5, [1, 2], {"kind": "logreg"}])
def test_from_bytes_rejects_wrong_payload_with_value_error(payload: object) -> None:
    with pytest.raises(ValueError):
        OnlineModel.from_bytes(CHECKPOINT_MAGIC + pickle.dumps(payload))


def test_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        OnlineModel("no-such-kind")


def test_processor_learns_each_resolved_label_once_with_its_issue_prediction() -> None:
    proc = processor()
    s, steps = run([invoice("c1", "i1", 100, 0, 10), invoice("c1", "i2", 100, 0, 30),
                    payment("c1", 100, 12, "i2"), payment("c1", 100, 20, "i1")], proc)
    assert [step.status for step in steps] == [OK] * 4
    assert [(lb.invoice_id, lb.y) for lb in steps[2].labels] == [("i2", 0)]
    # i1 (due 10) resolved late on the way to day 20 (deadline day 16), then was paid
    assert [(lb.invoice_id, lb.y, lb.resolved_at) for lb in steps[3].labels] == [
        ("i1", 1, ts(16))]
    assert proc.model.labels_seen == 2 and s.n_labels == 2 and s.n_late == 1
    assert proc.model.progressive.n == 2
    assert state_to_dict(s)["invoices"] == []
