"""Backtest: metrics against hand-computed values, the evaluation split, and the leakage guard."""

from __future__ import annotations

import copy
import importlib
import math
import random
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest

import models.processor as processor_module
from models import state as st
from models.config import DAY, ScoringConfig
from models.features import FEATURE_NAMES, features
from models.model import OnlineModel
from models.processor import Processor
from models.tools import backtest as bt
from models.tools import baselines
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import Event, InvoiceIssued, PaymentReceived, event_from_dict
from streams.cli import main

CFG = ScoringConfig()
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def iso(day: float) -> str:
    return processor_module.iso(T0 + day * DAY)


def issued(inv: str, day: float, due_in: float = 30, amount: str = "1000",
           customer: str = "c1") -> InvoiceIssued:
    e = event_from_dict({"schema_version": 1, "type": "invoice.issued", "event_id": f"i-{inv}",
                         "customer_id": customer, "invoice_id": inv, "amount": amount,
                         "currency": "EUR", "issued_at": iso(day), "due_at": iso(day + due_in)})
    assert isinstance(e, InvoiceIssued)
    return e


def paid(inv: str, day: float, amount: str = "1000", customer: str = "c1") -> PaymentReceived:
    e = event_from_dict({"schema_version": 1, "type": "payment.received",
                         "event_id": f"p-{inv}-{day}", "customer_id": customer,
                         "invoice_id": inv, "amount": amount, "currency": "EUR",
                         "received_at": iso(day)})
    assert isinstance(e, PaymentReceived)
    return e


def sim_events(customers: int = 30, days: int = 150, seed: int = 4) -> list[Event]:
    from schemas.events import decode_event

    cfg = SimulationConfig(customers=customers, days=days, seed=seed)
    return [decode_event(dumps(e)) for e in simulate(cfg)]


# --- metrics on tiny arrays, computed by hand ---------------------------------------------


def test_roc_auc_exact_with_ties_and_degenerate_cases() -> None:
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right
    assert bt.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie between a positive and a negative counts half
    assert bt.roc_auc([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9]) == (1 + 1 + 0.5 + 1) / 4
    assert bt.roc_auc([1, 1], [0.2, 0.3]) is None
    assert bt.roc_auc([0, 1], [0.9, 0.1]) == 0.0


def test_average_precision_by_hand() -> None:
    # ranked: 0.8 (late), 0.4, 0.35 (late), 0.1 -> 1/2 x 1 + 1/2 x 2/3
    assert bt.average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # tied scores form one threshold: precision 1/2 at recall 1
    assert bt.average_precision([1, 0], [0.5, 0.5]) == 0.5
    assert bt.average_precision([0, 0], [0.5, 0.5]) is None


def test_log_loss_brier_by_hand() -> None:
    y, p = [1, 0], [0.8, 0.4]
    assert bt.log_loss(y, p) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert bt.brier(y, p) == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert bt.log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, finite


def test_reliability_and_ece_by_hand() -> None:
    y, p = [0, 1, 0, 1], [0.05, 0.15, 0.15, 0.95]
    table = bt.reliability(y, p)
    assert len(table) == 10
    assert (table[1]["n"], table[1]["mean_p"], table[1]["observed"]) == (2, pytest.approx(0.15),
                                                                         0.5)
    assert table[5]["n"] == 0 and table[5]["observed"] is None
    # |0.05 - 0| x 1 + |0.15 - 0.5| x 2 + |0.95 - 1| x 1, over 4
    assert bt.ece(table) == pytest.approx((0.05 + 0.7 + 0.05) / 4)
    assert bt.reliability([1], [1.0])[9]["n"] == 1  # p = 1 falls in the last bin


def test_capture_of_late_money_by_hand() -> None:
    y = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    p = [0.9, 0.95, 0.1, 0.8, 0.2, 0.3, 0.1, 0.05, 0.4, 0.5]
    money = [100, 5, 5, 300, 5, 5, 5, 600, 5, 5]
    # top 10% = the single highest score (0.95): on time -> nothing captured
    assert bt.capture(y, p, money, 0.1) == 0.0
    # top 20% = 0.95 and 0.9 -> 100 of 1000 late
    assert bt.capture(y, p, money, 0.2) == pytest.approx(0.1)
    assert bt.capture(y, p, money, 0.3) == pytest.approx(0.4)
    assert bt.capture([0, 0], [0.1, 0.2], [1, 1], 0.5) is None


def test_metrics_agree_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    y = [rng.random() < 0.3 for _ in range(500)]
    p = [min(max(round(rng.gauss(0.5 if t else 0.35, 0.2), 2), 0.01), 0.99) for t in y]  # ties
    yi = [int(t) for t in y]
    assert bt.roc_auc(yi, p) == pytest.approx(metrics.roc_auc_score(yi, p))
    assert bt.average_precision(yi, p) == pytest.approx(metrics.average_precision_score(yi, p))
    assert bt.log_loss(yi, p) == pytest.approx(metrics.log_loss(yi, p))
    assert bt.brier(yi, p) == pytest.approx(metrics.brier_score_loss(yi, p))


def test_ece_matches_the_live_calibration_table() -> None:
    from models.model import Calibration

    rng = random.Random(5)
    pairs = [(rng.random(), int(rng.random() < 0.4)) for _ in range(300)]
    live = Calibration()
    for p, y in pairs:
        live.update(p, y)
    ys, ps = [y for _, y in pairs], [p for p, _ in pairs]
    assert bt.ece(bt.reliability(ys, ps)) == pytest.approx(live.ece())


# --- the run and the split ------------------------------------------------------------------


def run_stream(events: list[Event]) -> bt.BacktestData:
    run = bt.BacktestRun(CFG, OnlineModel())
    for e in events:
        run.submit(e)
    return run.finish()


def test_split_trains_on_resolved_labels_and_leaves_out_censored_invoices() -> None:
    # eval from day 90; the stream ends on day 200.5, so labels are certain for due <= 194.5
    events: list[Event] = [
        issued("A", 0), paid("A", 10),    # on time, resolved day 10: train
        issued("E", 60),                  # late (resolved day 96): issued before, resolved after
        issued("B", 100),                 # late, resolved day 136: test
        paid("E", 120),
        issued("F", 150),                 # late, due 180: test
        issued("C", 190),                 # never paid, due 220: censored
        issued("D", 195), paid("D", 199),  # on time, but due 225: censored (late ones would not
        paid("B", 200), paid("F", 200.5),  # have resolved yet, keeping it would bias the test)
    ]
    data = run_stream(events)
    by_id = {r.invoice_id: r for r in data.records}
    assert {k: r.y for k, r in by_id.items()} == {"A": 0, "E": 1, "B": 1, "C": None, "D": 0,
                                                  "F": 1}
    split = bt.evaluation_split(data, T0 + 90 * DAY)
    assert [r.invoice_id for r in split.train] == ["A"]
    assert sorted(r.invoice_id for r in split.test) == ["B", "F"]
    assert (split.issued_after, split.censored) == (4, 2)
    # the prediction kept is the one made at issue (the prior, for a fresh model)
    assert by_id["A"].p == pytest.approx(CFG.prior_late_rate)
    assert by_id["C"].due == T0 + 220 * DAY


def test_alert_report_window_excludes_known_bad_customers() -> None:
    eval_from = T0 + 100 * DAY
    truth = {"a": eval_from + 10 * DAY, "b": None, "c": eval_from - 5 * DAY,
             "d": eval_from + 40 * DAY}
    alerts = [("a", "entered_high_risk", eval_from + DAY),
              ("b", "entered_high_risk", eval_from + 2 * DAY),
              ("c", "entered_high_risk", eval_from + 3 * DAY),
              ("d", "entered_high_risk", eval_from - DAY),
              ("a", "risk_spike", eval_from)]
    report = bt.alert_report(alerts, truth, eval_from)
    assert (report["positives"], report["alerted"], report["hits"]) == (2, 2, 1)
    assert report["lead_days"] == [pytest.approx(9.0)]
    assert report["full_stream"]["alerted"] == 4


def test_scores_by_month() -> None:
    recs = [bt.InvoiceRecord("c", str(i), T0 + i * DAY, 100, p, y=y)
            for i, (p, y) in enumerate([(0.1, 0), (0.3, 1), (0.5, None)])]
    recs.append(bt.InvoiceRecord("c", "x", T0 + 40 * DAY, 100, 0.9, y=1))
    jan, feb = bt.scores_by_month(recs)
    assert (jan["month"], jan["n"], jan["labelled"]) == ("2024-01", 3, 2)
    assert jan["mean"] == pytest.approx(0.3) and jan["p50"] == pytest.approx(0.3)
    assert jan["late_rate"] == 0.5 and feb["month"] == "2024-02"


# --- the leakage guard ------------------------------------------------------------------------


def test_snapshot_is_the_features_at_issue_not_after() -> None:
    """Build features at issue, apply later payments, and the snapshot has not moved."""
    proc = Processor(CFG, OnlineModel())
    s, _ = proc.apply(None, issued("I0", 0))
    s, _ = proc.apply(s, paid("I0", 50))                   # a late payer so far
    at = T0 + 60 * DAY
    before = copy.deepcopy(s)
    s, _ = proc.apply(s, issued("I1", 60, due_in=30, amount="500"))
    st.advance(before, at, CFG)
    st.touch(before, at, "EUR")
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
    assert bt.features_as_of_issue(before, issued("I1", 60, amount="500"), CFG) is not None


def test_audit_passes_on_a_simulated_stream() -> None:
    audit = bt.audit_snapshots(sim_events(), CFG)
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
    audit = bt.audit_snapshots(events, CFG)
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
    audit = bt.audit_snapshots(events, CFG)
    assert audit.ok and audit.checked > 10


# --- baselines --------------------------------------------------------------------------------


def test_baselines_fit_and_score() -> None:
    pytest.importorskip("sklearn")
    rng = random.Random(1)
    n = len(FEATURE_NAMES)
    xs = [array("d", [rng.gauss(0, 1) for _ in range(n)]) for _ in range(300)]
    ys = [int(x[1] > 0) for x in xs]
    for kind in baselines.KINDS:
        p = baselines.fit_predict(kind, xs[:200], ys[:200], xs[200:])
        assert len(p) == 100 and all(0.0 <= v <= 1.0 for v in p)
        assert bt.roc_auc(ys[200:], p) > 0.9  # type: ignore[operator]
    with pytest.raises(baselines.BaselineUnavailable, match="one class"):
        baselines.fit_predict("gbm", xs[:10], [0] * 10, xs[10:])


def test_baseline_without_scikit_learn_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(baselines.BaselineUnavailable, match=r"arscore\[baseline\]"):
        baselines.require()


# --- the command --------------------------------------------------------------------------------


def write_sim(path: Path, customers: int = 40, days: int = 200) -> Path:
    from models.tools.simulator import SimulationStats

    stats = SimulationStats()
    cfg = SimulationConfig(customers=customers, days=days, seed=9)
    path.write_bytes(b"".join(dumps(e) + b"\n" for e in simulate(cfg, stats)))
    truth = path.with_name(f"{path.stem}.truth.json")
    truth.write_bytes(dumps(stats.truth))
    return truth


def test_backtest_command_writes_metrics_and_report(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    events = tmp_path / "events.jsonl"
    truth = write_sim(events)
    out = tmp_path / "bt"
    code = main(["backtest", str(events), "--eval-from", "2024-04-01", "-o", str(out),
                 "--baseline", "--ground-truth", str(truth), "--check-leakage"])
    err = capsys.readouterr().err
    assert code == 0, err
    m = orjson.loads((out / "metrics.json").read_bytes())
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "reliability",
                "capture_top10", "capture_top20", "counts", "alerts", "baselines"):
        assert key in m
    assert set(m["baselines"]) == {"logreg", "gbm"}
    assert 0.5 < m["roc_auc"] <= 1.0 and len(m["reliability"]) == 10
    assert m["counts"]["scored"] == m["n"] > 0
    assert m["leakage_check"]["mismatches"] == 0
    report = (out / "report.html").read_text()
    assert report.count("<svg") == 4 and "<script" not in report
    assert "online logreg" in err and "batch gbm" in err


def test_backtest_command_refuses_a_date_outside_the_stream(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            ) -> None:
    events = tmp_path / "events.jsonl"
    write_sim(events, customers=5, days=60)
    code = main(["backtest", str(events), "--eval-from", "2030-01-01", "-o", str(tmp_path)])
    assert code == 2
    assert "no invoice issued on/after --eval-from" in capsys.readouterr().err
