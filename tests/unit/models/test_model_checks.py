"""Checks every model kind passes, in the manner of River's ``checks``: one parametrised
suite, so a new kind in ``models.model.PIPELINES`` is held to the same contract.

- a checkpoint round trip gives a model that predicts, scores and keeps learning exactly
  like the original;
- the same labels in the same order give the same predictions (no hidden randomness);
- ``labels_seen`` and the progressive metrics count every label once, and ``learn``
  returns nothing (River's ``learn_one`` contract).
"""

from __future__ import annotations

import math
import random
from array import array

import pytest

from models.features import N_FEATURES
from models.model import PIPELINES, OnlineModel


def _stream(seed: int, n: int) -> list[tuple[array, int]]:  # type: ignore[type-arg]
    """Labelled snapshots with some signal in two features (deterministic per seed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = array("d", (rng.gauss(0.0, 1.0) for _ in range(N_FEATURES)))
        y = int(x[1] + 0.5 * x[4] + rng.gauss(0.0, 0.5) > 0)
        out.append((x, y))
    return out


def _train(model: OnlineModel, data: list[tuple[array, int]]) -> None:  # type: ignore[type-arg]
    for x, y in data:
        assert model.learn(x, y, model.predict(x)) is None


KINDS = sorted(PIPELINES)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_predicts_and_learns_the_same(kind: str) -> None:
    data = _stream(1, 120)
    model = OnlineModel(kind, prior=0.3)
    _train(model, data[:80])
    copy = OnlineModel.from_bytes(model.to_bytes())
    assert (copy.kind, copy.labels_seen, copy.version) == (model.kind, model.labels_seen,
                                                           model.version)
    probe = [x for x, _ in data[80:90]]
    assert [copy.predict(x) for x in probe] == [model.predict(x) for x in probe]
    assert [copy.score(x) for x in probe] == [model.score(x) for x in probe]
    _train(model, data[80:])
    _train(copy, data[80:])
    assert [copy.predict(x) for x in probe] == [model.predict(x) for x in probe]
    assert copy.progressive.summary() == model.progressive.summary()


@pytest.mark.parametrize("kind", KINDS)
def test_same_labels_in_the_same_order_give_the_same_model(kind: str) -> None:
    data = _stream(2, 100)
    first, second = OnlineModel(kind, prior=0.3), OnlineModel(kind, prior=0.3)
    _train(first, data)
    _train(second, data)
    probe = [x for x, _ in _stream(3, 10)]
    assert [first.predict(x) for x in probe] == [second.predict(x) for x in probe]


@pytest.mark.parametrize("kind", KINDS)
def test_every_label_is_counted_once_and_predictions_are_probabilities(kind: str) -> None:
    data = _stream(4, 60)
    model = OnlineModel(kind, prior=0.2)
    assert model.labels_seen == 0
    assert model.predict(data[0][0]) == pytest.approx(0.2)  # no labels yet: the prior
    _train(model, data)
    assert model.labels_seen == len(data)
    assert model.progressive.summary()["labels"] == len(data)
    for x, _ in data[:10]:
        p = model.predict(x)
        assert 0.0 < p < 1.0 and math.isfinite(p)
