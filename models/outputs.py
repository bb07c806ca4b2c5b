"""What a batch of steps sends: the one rule that decides which scores leave the core.

``ar.scores`` is a latest-per-customer view, so within one batch only each customer's
newest score is sent; every alert, label and dead letter is. The worker applies it to
each batch it takes from Kafka, a replay to what each line of its file released: one
definition, so the two paths agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.processor import REJECTED, Step


def newest_scores(steps: Iterable[Step]) -> dict[str, Step]:
    """Per customer, the last step of the batch that carries a score.

    Customers keep the order of their first score in the batch; refused steps send none.

    >>> from models.processor import OK
    >>> steps = [Step("a", OK, 1.0), Step("b", OK, 2.0), Step("a", OK, 3.0)]
    >>> for s, score in zip(steps, ["a1", "b1", "a2"]):
    ...     s.score = score  # a ScoreRecord in the core's own steps
    >>> {c: s.score for c, s in newest_scores(steps).items()}
    {'a': 'a2', 'b': 'b1'}
    """
    latest: dict[str, Step] = {}
    for step in steps:
        if step.score is not None and step.status != REJECTED:
            latest[step.customer_id] = step
    return latest
