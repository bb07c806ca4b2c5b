"""The backtest's numbers: capture of late money, alert quality in the window, scores by month."""

from __future__ import annotations

import math

import pytest
from backtest_events import T0

from models.config import DAY
from models.tools import report
from models.tools.backtest import InvoiceRecord


def test_capture_of_late_money_by_hand() -> None:
    y = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    p = [0.9, 0.95, 0.1, 0.8, 0.2, 0.3, 0.1, 0.05, 0.4, 0.5]
    money = [100, 5, 5, 300, 5, 5, 5, 600, 5, 5]
    # top 10% = the single highest score (0.95): on time -> nothing captured
    assert report.capture(y, p, money, 0.1) == 0.0
    # top 20% = 0.95 and 0.9 -> 100 of 1000 late
    assert report.capture(y, p, money, 0.2) == pytest.approx(0.1)
    assert report.capture(y, p, money, 0.3) == pytest.approx(0.4)
    assert math.isnan(report.capture([0, 0], [0.1, 0.2], [1, 1], 0.5))


def test_alert_report_window_excludes_known_bad_customers() -> None:
    eval_from = T0 + 100 * DAY
    truth = {"a": eval_from + 10 * DAY, "b": None, "c": eval_from - 5 * DAY,
             "d": eval_from + 40 * DAY}
    alerts = [("a", "entered_high_risk", eval_from + DAY),
              ("b", "entered_high_risk", eval_from + 2 * DAY),
              ("c", "entered_high_risk", eval_from + 3 * DAY),
              ("d", "entered_high_risk", eval_from - DAY),
              ("a", "risk_spike", eval_from)]
    quality = report.alert_report(alerts, truth, eval_from)
    assert (quality["positives"], quality["alerted"], quality["hits"]) == (2, 2, 1)
    assert quality["lead_days"] == [pytest.approx(9.0)]
    assert quality["full_stream"]["alerted"] == 4


def test_scores_by_month() -> None:
    recs = [InvoiceRecord("c", str(i), T0 + i * DAY, 100, p, y=y)
            for i, (p, y) in enumerate([(0.1, 0), (0.3, 1), (0.5, None)])]
    recs.append(InvoiceRecord("c", "x", T0 + 40 * DAY, 100, 0.9, y=1))
    jan, feb = report.scores_by_month(recs)
    assert (jan["month"], jan["n"], jan["labelled"]) == ("2024-01", 3, 2)
    assert jan["mean"] == pytest.approx(0.3) and jan["p50"] == pytest.approx(0.3)
    assert jan["late_rate"] == 0.5 and feb["month"] == "2024-02"
