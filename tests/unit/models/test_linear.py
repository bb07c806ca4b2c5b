"""The list-based fast path computes what River computes (River is the model of record)."""

from __future__ import annotations

import math
import random
from array import array

from river import compose, linear_model, optim, preprocessing

from models.features import FEATURE_NAMES, N_FEATURES, as_dict
from models.linear import FastLinear
from models.model import OnlineModel, logistic_pipeline

TOLERANCE = 1e-12  # in practice the two agree bit for bit; the test allows float noise only


def _stream(seed: int, n: int) -> list[tuple[list[float], bool]]:
    """Features on very different scales, some constant for a while, labels tied to two of them."""
    rng = random.Random(seed)
    scales = [10 ** rng.uniform(-3, 4) for _ in range(N_FEATURES)]
    out = []
    for t in range(n):
        x = [rng.gauss(0.0, 1.0) * s for s in scales]
        x[0] = 3.0  # never varies: scaled to 0
        x[7] = float(rng.random() < 0.1)
        if t < 30:
            x[3] = 1.0  # constant at first, then varies
        logit = x[1] / scales[1] + 2.0 * x[2] / scales[2]
        out.append((x, rng.random() < 1.0 / (1.0 + math.exp(-logit))))
    return out


def _river_p(pipeline: object, x: list[float]) -> float:
    return float(pipeline.predict_proba_one(as_dict(x))[True])  # type: ignore[attr-defined]


def test_fast_path_matches_river_predictions_and_weights() -> None:
    river = logistic_pipeline()
    fast = FastLinear(FEATURE_NAMES)
    rng = random.Random(3)
    worst = 0.0
    for x, y in _stream(1, 5000):
        worst = max(worst, abs(_river_p(river, x) - fast.proba(fast.scale(x))))
        if rng.random() < 0.6:  # labels arrive for some predictions only
            river.learn_one(as_dict(x), y)
            fast.learn(x, y)
    assert worst <= TOLERANCE
    scaler, model = river.steps.values()
    weights = model.weights
    assert all(abs(weights[k] - w) <= TOLERANCE for k, w in zip(FEATURE_NAMES, fast.weights, strict=True))
    assert abs(model.intercept - fast.intercept) <= TOLERANCE
    assert all(abs(scaler.means[k] - m) <= TOLERANCE * max(1.0, abs(m))
               for k, m in zip(FEATURE_NAMES, fast.means, strict=True))
    assert model.optimizer.n_iterations == fast.steps
    # the learned model is not trivial: the test would otherwise prove little
    assert max(abs(w) for w in fast.weights) > 0.01


def test_river_copy_and_back_keep_learning_identically() -> None:
    stream = _stream(2, 1500)
    fast = FastLinear(FEATURE_NAMES)
    for x, y in stream[:1000]:
        fast.learn(x, y)
    river = fast.to_river()
    back = FastLinear.from_river(river, FEATURE_NAMES)
    assert back is not None
    for x, y in stream[1000:]:
        assert _river_p(river, x) == fast.proba(fast.scale(x)) == back.proba(back.scale(x))
        river.learn_one(as_dict(x), y)
        fast.learn(x, y)
        back.learn(x, y)


def test_other_configurations_stay_on_river() -> None:
    sgd = compose.Pipeline(preprocessing.StandardScaler(),
                           linear_model.LogisticRegression(optimizer=optim.SGD(0.02), l2=1e-4))
    assert FastLinear.from_river(sgd, FEATURE_NAMES) is None
    assert FastLinear.from_river(logistic_pipeline(), FEATURE_NAMES) is not None
    m = OnlineModel()
    m.pipeline = sgd  # e.g. an old checkpoint: still served, through River
    x = array("d", [1.0] * N_FEATURES)
    m.learn(x, 1, 0.5)
    assert 0.0 < m.predict(x) < 1.0


def test_online_model_scores_like_river_explain() -> None:
    """score() (lists, the per-event path) and explain() (River dicts) agree, reasons included."""
    fast = OnlineModel()
    slow = OnlineModel()
    slow._fast, slow._pipeline = None, logistic_pipeline()  # the River path, as the reference
    for x, y in _stream(4, 800):
        xa = array("d", x)
        p_fast, terms = fast.score(xa)
        p_slow, contributions = slow.explain(xa)
        assert terms is not None and contributions is not None
        assert abs(p_fast - p_slow) <= TOLERANCE
        assert all(abs(contributions[k] - t) <= TOLERANCE
                   for k, t in zip(FEATURE_NAMES, terms, strict=True))
        fast.learn(xa, int(y), p_fast)
        slow.learn(xa, int(y), p_slow)
    assert fast.progressive.summary() == slow.progressive.summary()
