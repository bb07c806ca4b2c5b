"""The emitter's one rule (moving to the core): only a customer's newest score per batch."""

from __future__ import annotations

from types import SimpleNamespace

from models.processor import DUPLICATE, OK, REJECTED
from streams.emitter import newest_score_per_customer


def step(customer: str, score: str | None, status: str = OK) -> SimpleNamespace:
    return SimpleNamespace(customer_id=customer, score=score, status=status)


def test_only_the_newest_score_of_each_customer_in_a_batch_is_sent() -> None:
    steps = [step("a", "a1"), step("b", "b1"), step("a", "a2"), step("c", None),
             step("b", "b2", DUPLICATE), step("c", "c1", REJECTED)]
    latest = newest_score_per_customer(steps)  # type: ignore[arg-type]
    assert {c: s.score for c, s in latest.items()} == {"a": "a2", "b": "b2"}
    assert list(latest) == ["a", "b"]  # in the order of each customer's first score
