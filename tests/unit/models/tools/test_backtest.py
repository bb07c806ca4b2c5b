"""Backtest: the run through the engine, the evaluation split, and the command."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from backtest_events import CFG, T0, issued, paid

from models.config import DAY
from models.model import OnlineModel
from models.tools import backtest as bt
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import Event
from streams.cli import main

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
