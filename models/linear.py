"""A plain-list twin of the default River pipeline, for the per-event hot path.

The default model (``logreg``) is River's ``StandardScaler`` followed by
``LogisticRegression(optim.Adam(lr), l2=0)``. River stores every vector as a dict keyed
by feature name, which costs a dict build, a dict walk and a weights copy per score:
about a fifth of the core's time. :class:`FastLinear` keeps the same numbers in lists
indexed like :data:`models.features.FEATURE_NAMES` and performs *the same floating-point
operations in the same order* as River 0.26 does (Welford update, ``(x - mean) / var**0.5``,
left-to-right dot product, Log-loss gradient clamped, constant intercept rate, Adam with
bias correction), so predictions and weights are bit-for-bit River's. A unit test runs
both on one stream and compares them.

River stays the model of record: checkpoints hold a River pipeline
(:meth:`FastLinear.to_river`), and a loaded pipeline is copied back in
(:meth:`FastLinear.from_river`) only when it is exactly the configuration mirrored here;
anything else keeps running through River.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from operator import mul
from typing import Any

from river import compose, linear_model, optim, preprocessing, utils


def _left_sum(values: Iterable[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


left_sum: Callable[[Iterable[float]], float] = sum if sys.version_info < (3, 12) else _left_sum
"""Floats added left to right in plain doubles, River's ``VectorDict.dot`` order: CPython's
``sum`` does exactly that before 3.12 (3.12 compensates the rounding, which differs)."""


class FastLinear:
    """Standard scaler + logistic regression (Adam, Log loss, no penalty) over lists."""

    __slots__ = ("beta_1", "beta_2", "clip", "divisors", "eps", "intercept", "intercept_lr",
                 "lr", "m", "means", "n", "names", "sds", "steps", "v", "vars", "weights")

    def __init__(self, names: Sequence[str], lr: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, eps: float = 1e-8, intercept_lr: float = 0.01,
                 clip: float = 1e12) -> None:
        k = len(names)
        self.names = tuple(names)
        self.lr, self.beta_1, self.beta_2, self.eps = lr, beta_1, beta_2, eps
        self.intercept_lr, self.clip = intercept_lr, clip
        self.n = 0
        """Observations the scaler has seen (River counts per feature; ours are all equal)."""
        self.means = [0.0] * k
        self.vars = [0.0] * k
        self.sds = [0.0] * k
        """``var ** 0.5`` (0.0 where var is 0), cached between learns: predictions divide by it."""
        self.divisors = [math.inf] * k
        """``sds`` with inf for 0, so that :meth:`terms` can divide without a branch."""
        self.weights = [0.0] * k
        self.intercept = 0.0
        self.steps = 0
        """Optimizer steps taken (River's ``optimizer.n_iterations``)."""
        self.m = [0.0] * k
        self.v = [0.0] * k

    # --- inference ------------------------------------------------------------------

    def scale(self, x: Sequence[float]) -> list[float]:
        """River's ``StandardScaler.transform_one``: ``(x - mean) / var**0.5``, 0 where var is 0."""
        return [(xi - mi) / sd if sd else 0.0 for xi, mi, sd in zip(x, self.means, self.sds, strict=True)]

    def terms(self, x: Sequence[float]) -> tuple[list[float], float]:
        """Each feature's term of the log-odds (weight x scaled value), and the log-odds.

        The per-score path, one comprehension: ``(x - mean) / sd * w`` is River's
        ``w * ((x - mean) / sd)`` exactly (a product is the same either way round).
        Dividing by inf instead of branching on a zero variance gives 0.0 or -0.0 for
        River's 0.0; a signed zero changes no sum, product or comparison made from here
        on, so the numbers are River's. A non-finite feature would give NaN where River
        gives 0.0: then the branching path is taken instead, and a term whose scaled
        value is not finite comes back as NaN (River's explain leaves such features out).
        """
        terms = [(xi - mi) / di * wi for xi, mi, di, wi
                 in zip(x, self.means, self.divisors, self.weights, strict=True)]
        dot = left_sum(terms)
        if dot - dot == 0.0:
            return terms, dot + self.intercept
        # inf or nan somewhere: redo it exactly as River does, and say which features
        scaled = self.scale(x)
        terms = [wi * si if math.isfinite(si) else math.nan
                 for wi, si in zip(self.weights, scaled, strict=True)]
        dot = left_sum(wi * si for wi, si in zip(self.weights, scaled, strict=True))
        return terms, dot + self.intercept

    @staticmethod
    def sigmoid(z: float) -> float:
        """River's ``utils.math.sigmoid`` (with its cut-offs at +-30)."""
        if z < -30:
            return 0.0
        if z > 30:
            return 1.0
        return 1 / (1 + math.exp(-z))

    def raw(self, scaled: Sequence[float]) -> float:
        """Log-odds: the dot product summed left to right (as River's VectorDict.dot), plus intercept."""
        return left_sum(map(mul, self.weights, scaled)) + self.intercept

    def proba(self, scaled: Sequence[float]) -> float:
        """River's ``LogisticRegression.predict_proba_one(...)[True]`` (its sigmoid, cut-offs included)."""
        return self.sigmoid(self.raw(scaled))

    # --- learning -------------------------------------------------------------------

    def learn(self, x: Sequence[float], y: bool) -> None:
        """River's ``Pipeline.learn_one``: update the scaler, scale with it, take one Adam step."""
        self.n += 1
        n = self.n
        means, vars_, sds = self.means, self.vars, self.sds
        for i, xi in enumerate(x):
            old = means[i]
            means[i] = new = old + (xi - old) / n
            var = vars_[i] + ((xi - old) * (xi - new) - vars_[i]) / n
            vars_[i] = var
            sds[i] = var**0.5 if var else 0.0
        self.divisors = [sd if sd else math.inf for sd in sds]
        scaled = self.scale(x)
        # Log loss gradient w.r.t. the log-odds (optim.losses.Log.gradient, weights 1.0)
        sign = 1 if y else -1
        z = self.raw(scaled) * sign
        if z > 18.0:
            g = 1.0 * math.exp(-z) * -sign
        elif z < -18.0:
            g = 1.0 * -sign
        else:
            g = 1.0 * -sign / (math.exp(z) + 1.0)
        g = float(max(min(g * 1.0, self.clip), -self.clip))
        self.intercept -= self.intercept_lr * g
        # Adam step (optim.Adam._step_with_vector), bias-corrected learning rate
        b1, b2, eps = self.beta_1, self.beta_2, self.eps
        lr = self.lr * (1 - b2 ** (self.steps + 1)) ** 0.5
        lr /= 1 - b1 ** (self.steps + 1)
        c1, c2 = 1 - b1, 1 - b2
        m, v, w = self.m, self.v, self.weights
        for i, si in enumerate(scaled):
            gi = si * g
            m[i] = mi = b1 * m[i] + c1 * gi
            v[i] = vi = b2 * v[i] + c2 * gi**2
            w[i] -= lr * mi / (vi**0.5 + eps)
        self.steps += 1

    # --- River, the model of record -------------------------------------------------

    def to_river(self) -> Any:
        """The same model as a River pipeline (what checkpoints store)."""
        names = self.names
        scaler = preprocessing.StandardScaler()
        model = linear_model.LogisticRegression(
            optimizer=optim.Adam(self.lr, self.beta_1, self.beta_2, self.eps), l2=0.0,
            intercept_lr=self.intercept_lr, clip_gradient=self.clip)
        if self.n:
            scaler.counts.update(dict.fromkeys(names, self.n))
            scaler.means.update(zip(names, self.means, strict=True))
            scaler.vars.update(zip(names, self.vars, strict=True))
        model.intercept = self.intercept
        if self.steps:
            model._weights = utils.VectorDict(dict(zip(names, self.weights, strict=True)))
            model.optimizer.m = utils.VectorDict(dict(zip(names, self.m, strict=True)))
            model.optimizer.v = utils.VectorDict(dict(zip(names, self.v, strict=True)))
            model.optimizer.n_iterations = self.steps
        return compose.Pipeline(scaler, model)

    @classmethod
    def from_river(cls, pipeline: Any, names: Sequence[str]) -> FastLinear | None:
        """Copy a River scaler + logistic pipeline in; None unless it is exactly what we mirror."""
        try:
            scaler, model = pipeline.steps.values()
        except (AttributeError, ValueError):
            return None
        if not _mirrored(scaler, model):
            return None
        opt = model.optimizer
        fast = cls(names, opt.lr.learning_rate, opt.beta_1, opt.beta_2, opt.eps,
                   model.intercept_lr.learning_rate, model.clip_gradient)
        counts = {scaler.counts.get(name, 0) for name in names}
        if len(counts) != 1 or not set(scaler.counts) <= set(names):
            return None
        fast.n = counts.pop()
        if fast.n:
            fast.means = [float(scaler.means.get(name, 0.0)) for name in names]
            fast.vars = [float(scaler.vars.get(name, 0.0)) for name in names]
            fast.sds = [var**0.5 if var else 0.0 for var in fast.vars]
            fast.divisors = [sd if sd else math.inf for sd in fast.sds]
        weights = model._weights.to_dict()
        fast.steps = opt.n_iterations
        fast.intercept = float(model.intercept)
        if weights or fast.steps:
            if set(weights) != set(names) or not isinstance(opt.m, utils.VectorDict) \
                    or not isinstance(opt.v, utils.VectorDict):
                return None
            m, v = opt.m.to_dict(), opt.v.to_dict()
            if set(m) != set(names) or set(v) != set(names):
                return None
            fast.weights = [float(weights[name]) for name in names]
            fast.m = [float(m[name]) for name in names]
            fast.v = [float(v[name]) for name in names]
        return fast


def _mirrored(scaler: Any, model: Any) -> bool:
    """True when River would compute exactly what :class:`FastLinear` computes."""
    opt = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None)
    return (type(scaler) is preprocessing.StandardScaler and scaler.with_std
            and getattr(scaler, "window_size", None) is None
            and isinstance(scaler.counts, collections.Counter)
            and type(model) is linear_model.LogisticRegression
            and type(opt) is optim.Adam and type(opt.lr) is optim.schedulers.Constant
            and type(loss) is optim.losses.Log
            and loss.weight_pos == 1.0 and loss.weight_neg == 1.0
            and model.l1 == 0 and model.l2 == 0
            and type(model.intercept_lr) is optim.schedulers.Constant
            and type(model.initializer) is optim.initializers.Zeros)
