"""models.metrics: hand-computed values, agreement with scikit-learn on random data, the
streaming estimators against the exact ones, and one answer (NaN) where a metric is undefined."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from models import metrics as mx
from models.metrics import (
    BinnedAUC,
    Calibration,
    Progressive,
    average_precision,
    brier,
    calibration_gap,
    ece,
    log_loss,
    merged_metrics,
    reliability,
    roc_auc,
    roc_points,
)

# --- by hand ----------------------------------------------------------------------------------


def test_roc_auc_exact_with_ties() -> None:
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie between a positive and a negative counts half
    assert roc_auc([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9]) == (1 + 1 + 0.5 + 1) / 4
    assert roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == 0.75
    assert roc_auc([0, 1, 1], [0.1, 0.2, 0.3]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.1]) == 0.0


def test_average_precision_by_hand() -> None:
    # ranked: 0.8 (late), 0.4, 0.35 (late), 0.1 -> 1/2 x 1 + 1/2 x 2/3
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # tied scores form one threshold: precision 1/2 at recall 1
    assert average_precision([1, 0], [0.5, 0.5]) == 0.5


def test_log_loss_brier_gap_by_hand() -> None:
    y, p = [1, 0], [0.8, 0.4]
    assert log_loss(y, p) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert brier(y, p) == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert calibration_gap(y, p) == pytest.approx(0.6 - 0.5)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, finite
    assert log_loss([0], [1.0]) == pytest.approx(-math.log(1e-15), rel=0.01)


def test_reliability_and_ece_by_hand() -> None:
    y, p = [0, 1, 0, 1], [0.05, 0.15, 0.15, 0.95]
    table = reliability(y, p)
    assert len(table) == 10
    assert (table[1]["n"], table[1]["mean_p"], table[1]["observed"]) == (2, pytest.approx(0.15),
                                                                         0.5)
    assert table[5]["n"] == 0 and table[5]["observed"] is None and table[5]["mean_p"] is None
    assert (table[0]["lo"], table[0]["hi"]) == (0.0, 0.1)
    # |0.05 - 0| x 1 + |0.15 - 0.5| x 2 + |0.95 - 1| x 1, over 4
    assert ece(y, p) == pytest.approx((0.05 + 0.7 + 0.05) / 4)
    assert reliability([1], [1.0])[9]["n"] == 1  # p = 1 falls in the last bin
    assert len(reliability(y, p, bins=4)) == 4


def test_roc_points_walk_from_origin_to_corner() -> None:
    pts = roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert pts == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert roc_points([1, 1], [0.1, 0.2]) == [(0.0, 0.0)]


# --- one answer where a metric is undefined ----------------------------------------------------


@pytest.mark.parametrize("y, p", [([], []), ([1, 1], [0.2, 0.3]), ([0, 0], [0.2, 0.3])])
def test_roc_auc_is_nan_without_both_classes(y: list[int], p: list[float]) -> None:
    assert math.isnan(roc_auc(y, p))
    auc = BinnedAUC()
    for label, score in zip(y, p, strict=True):
        auc.update(label, score)
    assert math.isnan(auc.get())


def test_every_metric_of_no_labels_is_nan() -> None:
    for metric in (roc_auc, average_precision, log_loss, brier, calibration_gap, ece):
        assert math.isnan(metric([], [])), metric.__name__
    assert math.isnan(average_precision([0, 0], [0.3, 0.4]))  # no positive
    assert math.isnan(Calibration().ece())
    summary = Progressive().summary()
    assert summary["labels"] == 0.0
    assert all(math.isnan(v) for k, v in summary.items() if k != "labels")


def test_one_argument_order_everywhere() -> None:
    """(y, p): swapping the arguments of a list metric is an error or a different answer."""
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, p) == 0.75 and roc_auc(p, y) != 0.75  # type: ignore[arg-type]
    from models.drift import ModelHealth

    h = ModelHealth(window=4)
    for label, score in zip(y, p, strict=True):
        h.observe_label(score, label)  # an event (this prediction got this label), not a metric
    snap = h.snapshot()
    assert snap["window_roc_auc"] == roc_auc(y, p)
    assert snap["window_log_loss"] == log_loss(y, p)
    assert snap["window_brier"] == brier(y, p)
    assert snap["calibration_gap"] == calibration_gap(y, p)


# --- against scikit-learn, on random data ------------------------------------------------------

labels_and_scores = hs.integers(min_value=2, max_value=80).flatmap(
    lambda n: hs.tuples(
        hs.lists(hs.integers(0, 1), min_size=n, max_size=n),
        # few distinct values, so ties are common
        hs.lists(hs.integers(0, 20).map(lambda k: k / 20), min_size=n, max_size=n),
    ))


@settings(max_examples=150, deadline=None)
@given(labels_and_scores)
def test_list_metrics_agree_with_scikit_learn(data: tuple[list[int], list[float]]) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    y, p = data
    clipped = [min(max(v, 1e-15), 1 - 1e-15) for v in p]
    if 0 < sum(y) < len(y):
        assert roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p))
        assert average_precision(y, p) == pytest.approx(sk.average_precision_score(y, p))
        assert log_loss(y, p) == pytest.approx(sk.log_loss(y, clipped, labels=[0, 1]))
    assert brier(y, p) == pytest.approx(sk.brier_score_loss(y, p, pos_label=1))


def test_metrics_agree_with_scikit_learn_on_a_large_sample() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    y = [int(rng.random() < 0.3) for _ in range(2000)]
    p = [min(max(round(rng.gauss(0.5 if t else 0.35, 0.2), 2), 0.01), 0.99) for t in y]  # ties
    assert roc_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p))
    assert average_precision(y, p) == pytest.approx(sk.average_precision_score(y, p))
    assert log_loss(y, p) == pytest.approx(sk.log_loss(y, p))
    assert brier(y, p) == pytest.approx(sk.brier_score_loss(y, p))
    fpr, tpr, _ = sk.roc_curve(y, p, drop_intermediate=False)
    assert roc_points(y, p) == [pytest.approx((a, b)) for a, b in zip(fpr, tpr, strict=True)]


# --- the streaming estimators against the exact ones -------------------------------------------


@settings(max_examples=100, deadline=None)
@given(labels_and_scores)
def test_binned_auc_equals_the_exact_auc_when_no_bin_mixes_scores(
        data: tuple[list[int], list[float]]) -> None:
    y, p = data
    auc = BinnedAUC()
    for label, score in zip(y, p, strict=True):
        auc.update(label, score)
    exact = roc_auc(y, p)
    assert (math.isnan(exact) and math.isnan(auc.get())) or auc.get() == pytest.approx(exact)


@settings(max_examples=100, deadline=None)
@given(hs.lists(hs.tuples(hs.floats(0, 1), hs.integers(0, 1)), max_size=60))
def test_progressive_summary_equals_the_list_metrics(pairs: list[tuple[float, int]]) -> None:
    pv = Progressive()
    for p, y in pairs:
        pv.update(y, p)
    ys, ps = [y for _, y in pairs], [p for p, _ in pairs]
    s = pv.summary()
    assert s["labels"] == len(pairs)
    assert s["brier"] == pytest.approx(brier(ys, ps), nan_ok=True)
    assert s["log_loss"] == pytest.approx(log_loss(ys, ps), nan_ok=True, rel=1e-9)
    assert s["ece"] == pytest.approx(ece(ys, ps), nan_ok=True)
    assert pv.calibration.table() == reliability(ys, ps)


def test_calibration_survives_a_pickle_round_trip() -> None:
    pv = Progressive()
    for p, y in ((0.2, 0), (0.9, 1), (0.7, 0)):
        pv.update(y, p)
    back = pickle.loads(pickle.dumps(pv))
    assert back.summary() == pv.summary()


def test_checkpoints_naming_the_old_module_still_load() -> None:
    """Checkpoints written before the move pickled models.model.{Progressive,...}."""
    pv = Progressive()
    for p, y in ((0.2, 0), (0.9, 1), (0.7, 0)):
        pv.update(y, p)
    old = pickle.dumps(pv, protocol=0).replace(b"models.metrics\n", b"models.model\n")
    assert b"models.metrics" not in old
    back = pickle.loads(old)
    assert isinstance(back, Progressive) and back.summary() == pv.summary()


# --- partitions --------------------------------------------------------------------------------


class _Model:
    def __init__(self, pairs: list[tuple[float, int]]) -> None:
        self.progressive = Progressive()
        for p, y in pairs:
            self.progressive.update(y, p)


def test_merged_metrics_weights_by_labels_and_skips_undefined_parts() -> None:
    a = _Model([(0.9, 1), (0.2, 0), (0.6, 0)])
    b = _Model([(0.3, 1), (0.4, 0)])
    one_class = _Model([(0.1, 0), (0.2, 0)])
    empty = _Model([])
    sa, sb, sc = (m.progressive.summary() for m in (a, b, one_class))
    merged = merged_metrics([a, b, one_class, empty])
    assert merged["labels"] == 7.0
    assert merged["brier"] == pytest.approx((3 * sa["brier"] + 2 * sb["brier"]
                                             + 2 * sc["brier"]) / 7)
    # the one-class partition has no AUC: it is left out, not counted as 0.5
    assert merged["roc_auc"] == pytest.approx((3 * sa["roc_auc"] + 2 * sb["roc_auc"]) / 5)
    assert merged_metrics([a]) == sa
    assert math.isnan(merged_metrics([empty, _Model([])])["roc_auc"])
    assert math.isnan(merged_metrics([one_class, _Model([(0.5, 0)])])["roc_auc"])


def test_bins_cover_the_unit_interval() -> None:
    assert [mx.bin_of(v, 10) for v in (0.0, 0.0999, 0.1, 0.55, 0.9999, 1.0)] == [0, 0, 1, 5, 9, 9]
    assert mx.bin_of(-0.1, 10) == 0 and mx.bin_of(1.5, 10) == 9
