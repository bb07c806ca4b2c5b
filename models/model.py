"""The online late-payment model: a River pipeline with delayed labels and progressive validation.

``predict`` is called at invoice issue on a feature snapshot; ``learn`` is called
on that same snapshot once the invoice's outcome is known. Before each learn, the
prediction that was made *at issue* is scored (progressive validation), so the
metrics measure what the model really knew when it mattered.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from river import (
    compose,
    ensemble,
    feature_extraction,
    forest,
    linear_model,
    optim,
    preprocessing,
    tree,
)

from models.features import FEATURE_NAMES, as_dict
from models.linear import FastLinear
from models.metrics import BinnedAUC, Calibration, Progressive  # noqa: F401

# BinnedAUC and Calibration are imported only for checkpoints written before the metrics
# moved to models.metrics: their pickles name models.model.{Progressive,BinnedAUC,Calibration}.

CHECKPOINT_MAGIC = b"ARSCORE-MODEL\x01"
PRIOR_WEIGHT = 200.0
"""Until the model has seen this many labels its output is blended with the prior (cold start)."""


def logistic_pipeline() -> Any:
    """The default: standardised features into a logistic regression trained by Adam.

    Adam(0.001) without L2 won the learning-rate sweep in docs/model-choice.md (ROC AUC
    0.9750 vs 0.9705 for the first SGD(0.02) setting, ECE 0.037 on the 1,000-customer stream).
    """
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.Adam(0.001), l2=0.0),
    )


def poly_pipeline() -> Any:
    """Logistic regression on standardised features and all their pairwise products.

    The products are standardised again: their heavy tails would otherwise make SGD jump.
    """
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        feature_extraction.PolynomialExtender(degree=2, include_bias=False),  # type: ignore[no-untyped-call]
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(0.01), l2=1e-4),
    )


# Every kind is a compose.Pipeline, so OnlineModel.contributions can look at its steps
# (it explains only scaler + linear model pipelines and returns None for the others).


def hoeffding_pipeline() -> Any:
    """A Hoeffding adaptive tree: grows splits as evidence arrives, replaces drifting branches."""
    return compose.Pipeline(
        tree.HoeffdingAdaptiveTreeClassifier(grace_period=200, leaf_prediction="mc", seed=7))


def arf_pipeline() -> Any:
    """A small adaptive random forest (10 Hoeffding trees with drift detectors)."""
    return compose.Pipeline(forest.ARFClassifier(n_models=10, leaf_prediction="mc", seed=7))


def amf_pipeline() -> Any:
    """An aggregated Mondrian forest: online trees whose averaged leaves calibrate well."""
    return compose.Pipeline(forest.AMFClassifier(n_estimators=10, use_aggregation=True, seed=7))


def bagging_pipeline() -> Any:
    """ADWIN bagging of the baseline: resamples the stream, resets members that drift."""
    return compose.Pipeline(
        ensemble.ADWINBaggingClassifier(logistic_pipeline(), n_models=5, seed=7))


PIPELINES: dict[str, Callable[[], Any]] = {
    "logreg": logistic_pipeline,
    "poly": poly_pipeline,
    "hat": hoeffding_pipeline,
    "arf": arf_pipeline,
    "amf": amf_pipeline,
    "bagging": bagging_pipeline,
}


class OnlineModel:
    """Predict P(late) for a feature snapshot; learn once its label is known.

    >>> from array import array
    >>> m = OnlineModel(prior=0.3)
    >>> x = array("d", [0.0] * len(FEATURE_NAMES))
    >>> round(m.predict(x), 3)  # no labels yet: the prior
    0.3
    >>> m.learn(x, 1, p_at_issue=0.3)
    >>> m.labels_seen
    1
    """

    def __init__(self, kind: str = "logreg", prior: float = 0.3, origin: str = "fresh") -> None:
        if kind not in PIPELINES:
            raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(PIPELINES)}")
        self.kind = kind
        self.prior = prior
        self.origin = origin
        self._pipeline: Any = None
        self._fast: FastLinear | None = None
        self.pipeline = PIPELINES[kind]()
        self.labels_seen = 0
        self.progressive = Progressive()

    @property
    def pipeline(self) -> Any:
        """The model as a River pipeline, River being the model of record.

        When the pipeline is the default scaler + logistic regression, the model runs on
        :class:`~models.linear.FastLinear` (same numbers, plain lists) and this returns a
        River copy of it: read it or checkpoint it, but learn through :meth:`learn`.
        """
        return self._fast.to_river() if self._fast is not None else self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Any) -> None:
        self._fast = FastLinear.from_river(pipeline, FEATURE_NAMES)
        self._pipeline = None if self._fast is not None else pipeline

    @property
    def version(self) -> str:
        """Names the model a score came from: kind, where it started, labels learned since."""
        return f"{self.kind}:{self.origin}"

    def _linear(self) -> tuple[Any, Any] | None:
        """(scaler, linear model) when the River pipeline is exactly that, else None."""
        steps = getattr(self._pipeline, "steps", None)
        if steps is None or len(steps) != 2:
            return None
        scaler, linear = steps.values()
        return (scaler, linear) if hasattr(linear, "weights") else None

    def _blend(self, raw: float) -> float:
        w = self.labels_seen / (self.labels_seen + PRIOR_WEIGHT)
        p = w * raw + (1.0 - w) * self.prior
        return min(max(p, 1e-4), 1.0 - 1e-4)

    def predict(self, x: Sequence[float]) -> float:
        """P(late) for the invoice described by ``x``, blended with the prior while young."""
        fast = self._fast
        if fast is not None:
            return self._blend(fast.sigmoid(fast.terms(x)[1]))
        return self.explain(x, with_contributions=False)[0]

    def score(self, x: Sequence[float]) -> tuple[float, list[float] | None]:
        """P(late) and each feature's push on the log-odds, as a list ordered like FEATURE_NAMES.

        The per-event path: no dicts. Contributions are None for pipelines that are not
        a scaler + linear model; a feature whose standardised value is not finite gets NaN
        (it is left out, as :meth:`explain` leaves it out).
        """
        fast = self._fast
        if fast is None:
            p, contributions = self.explain(x)
            if contributions is None:
                return p, None
            return p, [contributions.get(name, math.nan) for name in FEATURE_NAMES]
        terms, z = fast.terms(x)
        return self._blend(fast.sigmoid(z)), terms

    def explain(self, x: Sequence[float], with_contributions: bool = True,
                ) -> tuple[float, dict[str, float] | None]:
        """P(late) and, for scaler + linear pipelines, each feature's push on the log-odds.

        One pass: the standardised features feed both the prediction and the contributions
        (the same arithmetic River's Pipeline does, so the probability is identical).
        """
        fast = self._fast
        if fast is not None:
            scaled_list = fast.scale(x)
            p = self._blend(fast.proba(scaled_list))
            if not with_contributions:
                return p, None
            return p, {name: wi * si for name, wi, si
                       in zip(FEATURE_NAMES, fast.weights, scaled_list, strict=True)
                       if math.isfinite(si)}
        linear = self._linear()
        if linear is None:
            raw = self._pipeline.predict_proba_one(as_dict(x)).get(True, self.prior)
            return self._blend(float(raw)), None
        scaler, model = linear
        scaled = scaler.transform_one(as_dict(x))
        p = self._blend(float(model.predict_proba_one(scaled).get(True, self.prior)))
        if not with_contributions:
            return p, None
        weights = model.weights
        return p, {name: weights.get(name, 0.0) * value for name, value in scaled.items()
                   if math.isfinite(value)}

    def learn(self, x: Sequence[float], y: int, p_at_issue: float) -> None:
        """Score the prediction made at issue, then train on the snapshot."""
        self.progressive.update(y, p_at_issue)
        if self._fast is not None:
            self._fast.learn(x, bool(y))
        else:
            self._pipeline.learn_one(as_dict(x), bool(y))
        self.labels_seen += 1

    def contributions(self, x: Sequence[float]) -> dict[str, float] | None:
        """Per-feature push on the log-odds (weight x standardised value), for reasons.

        Returns None for pipelines that are not a scaler + linear model.
        """
        return self.explain(x)[1]

    # --- checkpoints ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A checkpoint: magic header + pickle. Load only checkpoints you wrote yourself."""
        state = {"kind": self.kind, "prior": self.prior, "origin": self.origin,
                 "pipeline": self.pipeline, "labels_seen": self.labels_seen,
                 "progressive": self.progressive, "features": FEATURE_NAMES}
        return CHECKPOINT_MAGIC + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, raw: bytes, origin: str | None = None) -> OnlineModel:
        """Inverse of :meth:`to_bytes`; refuses files that are not arscore checkpoints."""
        if not raw.startswith(CHECKPOINT_MAGIC):
            raise ValueError("not an arscore model checkpoint (bad header)")
        try:
            state = pickle.loads(raw[len(CHECKPOINT_MAGIC):])
        except Exception as exc:  # a truncated or corrupt file
            raise ValueError(f"corrupt model checkpoint: {exc}") from exc
        keys = {"kind", "prior", "origin", "pipeline", "labels_seen", "progressive", "features"}
        if not isinstance(state, dict) or not keys <= state.keys():
            raise ValueError("corrupt model checkpoint: unexpected payload")
        if tuple(state["features"]) != FEATURE_NAMES:
            raise ValueError("checkpoint was trained on a different feature set")
        model = cls(state["kind"], state["prior"], origin or state["origin"])
        model.pipeline = state["pipeline"]
        model.labels_seen = state["labels_seen"]
        model.progressive = state["progressive"]
        return model
