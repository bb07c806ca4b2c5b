"""Batch baselines (scikit-learn): fit on snapshots, score, and say how to get them."""

from __future__ import annotations

import importlib
import random
from array import array
from typing import Any

import pytest

from models.features import FEATURE_NAMES
from models.metrics import roc_auc
from models.tools import baselines

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
        assert roc_auc(ys[200:], p) > 0.9
    with pytest.raises(baselines.BaselineUnavailable, match="one class"):
        baselines.fit_predict("gbm", xs[:10], [0] * 10, xs[10:])


def test_baseline_without_scikit_learn_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    def missing(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(baselines.BaselineUnavailable, match=r"arscore\[baseline\]"):
        baselines.require()
