"""Model health: PSI, the ADWIN error-rate detector, windowed AUC / log loss, serialisation."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from models.drift import ModelHealth, psi
from streams.health import HealthExporter

# --- PSI ------------------------------------------------------------------------------


def test_psi_hand_computed() -> None:
    # shares 0.5/0.5 -> 0.8/0.2: 0.3*ln(0.8/0.5) + (-0.3)*ln(0.2/0.5)
    expected = 0.3 * math.log(1.6) - 0.3 * math.log(0.4)
    assert psi([50, 50], [80, 20]) == pytest.approx(expected)
    assert psi([50, 50], [80, 20]) == pytest.approx(0.41589, abs=1e-5)
    assert psi([10, 20, 70], [10, 20, 70]) == 0.0
    assert psi([0, 0], [1, 1]) == 0.0  # no reference yet


def test_psi_empty_bin_is_floored_at_epsilon() -> None:
    eps = 1e-4
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert psi([5, 5], [10, 0], epsilon=eps) == pytest.approx(expected)
    assert math.isfinite(psi([5, 5], [10, 0]))


def test_model_health_psi_reference_then_sliding_window() -> None:
    h = ModelHealth(reference_size=10, window=10)
    for p in [0.05] * 5 + [0.95] * 5:
        h.observe_score(p)
    assert h.reference_ready and h.snapshot()["psi"] == 0.0
    for _ in range(10):  # the current window (last 10 scores) moves entirely to bin 0
        h.observe_score(0.01)
    ref = [5] + [0] * 8 + [5]
    cur = [10] + [0] * 9
    assert h.reference == ref and h.current == cur  # the reference stays frozen
    eps = 1e-4
    expected = (1.0 - 0.5) * math.log(2.0) + (eps - 0.5) * math.log(eps / 0.5)
    assert h.snapshot()["psi"] == pytest.approx(expected)
    assert h.snapshot()["psi"] > 0.2


def test_psi_is_zero_until_the_reference_is_complete() -> None:
    h = ModelHealth(reference_size=100)
    for _ in range(50):
        h.observe_score(0.9)
    s = h.snapshot()
    assert s["psi"] == 0.0 and s["reference_ready"] == 0.0 and s["reference_scores"] == 50


def test_saved_reference_is_used_as_is() -> None:
    h = ModelHealth(reference_size=1000).with_reference([10] * 10)
    for i in range(1000):
        h.observe_score((i % 10) / 10 + 0.05)
    assert h.snapshot()["psi"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        ModelHealth().with_reference([1, 2])


# --- error-rate change detector ----------------------------------------------------------


def _labels(rng: random.Random, n: int, error_rate: float) -> list[tuple[float, int]]:
    """Predictions of 0.2: a label is an error (|y - p| > 0.5) exactly when y = 1."""
    return [(0.2, 1 if rng.random() < error_rate else 0) for _ in range(n)]


def test_detector_quiet_on_a_stable_stream() -> None:
    rng = random.Random(7)
    h = ModelHealth()
    fired = [h.observe_label(p, y) for p, y in _labels(rng, 4000, 0.15)]
    assert not any(fired) and h.drifts_detected == 0
    assert h.snapshot()["error_rate"] == pytest.approx(0.15, abs=0.03)


def test_detector_fires_on_an_injected_error_rate_change() -> None:
    rng = random.Random(7)
    h = ModelHealth()
    before = [h.observe_label(p, y) for p, y in _labels(rng, 2000, 0.15)]
    after = [h.observe_label(p, y) for p, y in _labels(rng, 2000, 0.6)]
    assert not any(before)
    assert any(after) and h.drifts_detected >= 1
    assert after.index(True) < 300  # noticed soon after the change


# --- windowed quality -------------------------------------------------------------------


def test_window_keeps_only_the_last_w_labels() -> None:
    h = ModelHealth(window=3)
    for p, y in ((0.9, 0), (0.2, 0), (0.7, 1), (0.4, 0)):
        h.observe_label(p, y)
    s = h.snapshot()  # the window is (0.2, 0), (0.7, 1), (0.4, 0)
    assert s["window_labels"] == 3 and s["labels_seen"] == 4
    assert s["window_roc_auc"] == 1.0
    assert s["window_log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.6)) / 3)
    assert s["calibration_gap"] == pytest.approx((0.2 + 0.7 + 0.4) / 3 - 1 / 3)
    assert s["window_late_rate"] == pytest.approx(1 / 3)


# --- serialisation ------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    rng = random.Random(3)
    h = ModelHealth(reference_size=50, window=40)
    for _ in range(120):
        h.observe_score(rng.random())
    for p, y in _labels(rng, 90, 0.3):
        h.observe_label(p + rng.random() * 0.5, y)
    back = ModelHealth.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.to_dict() == h.to_dict()
    a, b = h.snapshot(), back.snapshot()
    assert a.keys() == b.keys()
    for k in a.keys() - {"error_rate"}:
        assert a[k] == pytest.approx(b[k], nan_ok=True), k
    # the detector is rebuilt from the windowed labels only (its buckets are not stored)
    window_errors = sum(abs(y - p) > 0.5 for p, y in back.to_dict()["labels"]) / 40
    assert b["error_rate"] == pytest.approx(window_errors)
    # it keeps going the same way
    h.observe_score(0.99)
    back.observe_score(0.99)
    assert back.snapshot()["psi"] == pytest.approx(h.snapshot()["psi"])


@pytest.mark.parametrize("bad", [{}, {"format": "other"}, [], {"format": "arscore-model-health/1"}])
def test_from_dict_refuses_other_records(bad: object) -> None:
    with pytest.raises(ValueError):
        ModelHealth.from_dict(bad)  # type: ignore[arg-type]


# --- the exporter ---------------------------------------------------------------------------


def _value(registry: CollectorRegistry, name: str) -> float:
    v = registry.get_sample_value(name)
    assert v is not None, name
    return v


def test_exporter_sets_gauges_and_counters(tmp_path: Path) -> None:
    r = CollectorRegistry()
    ex = HealthExporter(r, reference_size=4, window=10)
    for p in (0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9):
        ex.on_score(p)
    for p, y in ((0.2, 0), (0.8, 1), (0.3, 1), (0.5, 0)):
        ex.on_label(p, y)
    ex.set_money_at_risk(1234.5)
    ex.on_rebalance()
    ex.refresh()
    assert _value(r, "arscore_score_psi") > 0.2
    assert _value(r, "arscore_score_psi_reference_ready") == 1.0
    assert _value(r, "arscore_model_window_roc_auc") == pytest.approx(0.75)
    assert _value(r, "arscore_model_calibration_gap") == pytest.approx(0.45 - 0.5)
    assert _value(r, "arscore_money_at_risk") == 1234.5
    assert _value(r, "arscore_rebalances_total") == 1.0
    assert _value(r, "arscore_model_drift_detected_total") == 0.0

    path = tmp_path / "health.json"
    ex.save(path)
    again = HealthExporter(CollectorRegistry())
    assert again.load(path)
    assert again.health.reference == ex.health.reference
    assert not again.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    assert not again.load(tmp_path / "bad.json")


def test_exporter_counts_detected_drifts() -> None:
    r = CollectorRegistry()
    ex = HealthExporter(r)
    rng = random.Random(7)
    for p, y in _labels(rng, 2000, 0.15) + _labels(rng, 2000, 0.6):
        ex.on_label(p, y)
    assert _value(r, "arscore_model_drift_detected_total") >= 1
