"""The dead letter of a step the core refused: one definition for the worker and replay.

A valid event that the state refuses (a payment in the wrong currency, an invoice far in
the future, ...) leaves the core as a :class:`~models.processor.Step` with status
``rejected``; both the Kafka path and ``arscore replay`` turn it into the same
:class:`~schemas.records.DeadLetter`.
"""

from __future__ import annotations

from models.processor import Step
from schemas.codec import DecodeError
from schemas.records import DeadLetter, dead_letter


def rejected_letter(step: Step, failed_at: str) -> DeadLetter:
    """A valid event the core refused, dead-lettered with its original bytes and position.

    ``step.source`` is ``topic:partition`` on the Kafka path and the file name in a replay.
    """
    topic, _, partition = (step.source or "").rpartition(":")
    if not partition.isdigit():
        topic, partition = step.source or "", ""
    return dead_letter(step.raw, DecodeError(step.reason or "rejected"),
                       topic=topic, partition=int(partition) if partition else None,
                       offset=step.offset if step.offset >= 0 else None, failed_at=failed_at,
                       stage="apply", customer_id=step.customer_id,
                       event_id=step.event.event_id if step.event else None)
