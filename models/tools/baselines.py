"""Batch baselines (scikit-learn): what a model fitted once on history would have scored.

The online model has to beat, or at least match, the obvious alternative: a
logistic regression or gradient-boosted trees trained offline on the same feature
snapshots and the same labels. To keep the comparison fair the baselines get no
more than the online model had at the evaluation date: they are trained on the
invoices whose labels *resolved* before it, and score the invoices issued on or
after it from their snapshots at issue. They are then frozen (a batch model is
retrained on a schedule, not per label), which is exactly the trade-off measured.

scikit-learn is an optional extra (``pip install 'arscore[baseline]'``); it is
imported only when a baseline is asked for.
"""

from __future__ import annotations

import importlib
from array import array
from collections.abc import Callable, Sequence
from typing import Any

KINDS = ("logreg", "gbm")


class BaselineUnavailable(RuntimeError):
    """scikit-learn is missing, or the training data cannot fit a classifier."""


def _sklearn(module: str) -> Any:
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError:
        raise BaselineUnavailable(
            "batch baselines need scikit-learn: pip install 'arscore[baseline]'") from None


def _logreg() -> Any:
    """Standardised features into an L2 logistic regression (the batch twin of ``logreg``)."""
    pipeline = _sklearn("pipeline")
    preprocessing = _sklearn("preprocessing")
    linear = _sklearn("linear_model")
    return pipeline.make_pipeline(preprocessing.StandardScaler(),
                                  linear.LogisticRegression(max_iter=2000))


def _gbm() -> Any:
    """Histogram gradient boosting: strong on tabular data with no tuning, fast on 1e5 rows."""
    ensemble = _sklearn("ensemble")
    return ensemble.HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1,
                                                   early_stopping=False, random_state=0)


FACTORIES: dict[str, Callable[[], Any]] = {"logreg": _logreg, "gbm": _gbm}


def fit_predict(kind: str, x_train: Sequence[array], y_train: Sequence[int],  # type: ignore[type-arg]
                x_test: Sequence[array]) -> list[float]:  # type: ignore[type-arg]
    """Fit one baseline on the training snapshots; P(late) for each test snapshot."""
    if kind not in FACTORIES:
        raise ValueError(f"unknown baseline {kind!r}; known: {', '.join(KINDS)}")
    if len(set(y_train)) < 2:
        raise BaselineUnavailable("the training labels are all one class: move --eval-from later")
    np = importlib.import_module("numpy")
    model = FACTORIES[kind]()
    model.fit(np.asarray(x_train, dtype=float), np.asarray(y_train, dtype=int))
    if not x_test:
        return []
    proba = model.predict_proba(np.asarray(x_test, dtype=float))
    return [float(v) for v in proba[:, list(model.classes_).index(1)]]


def require() -> None:
    """Fail early (before a long run) when scikit-learn is not installed."""
    _sklearn("base")
