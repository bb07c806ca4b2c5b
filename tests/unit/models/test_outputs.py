"""The core's one rule on what a batch sends: only a customer's newest score."""

from __future__ import annotations

from models.outputs import newest_scores
from models.processor import DUPLICATE, OK, REJECTED, Step


def step(customer: str, score: str | None, status: str = OK) -> Step:
    s = Step(customer, status, 0.0)
    s.score = score  # type: ignore[assignment]  # a stand-in for a ScoreRecord
    return s


def test_only_the_newest_score_of_each_customer_in_a_batch_is_sent() -> None:
    steps = [step("a", "a1"), step("b", "b1"), step("a", "a2"), step("c", None),
             step("b", "b2", DUPLICATE), step("c", "c1", REJECTED)]
    latest = newest_scores(steps)
    assert {c: s.score for c, s in latest.items()} == {"a": "a2", "b": "b2"}
    assert list(latest) == ["a", "b"]  # in the order of each customer's first score


def test_an_empty_batch_sends_nothing() -> None:
    assert newest_scores([]) == {}
