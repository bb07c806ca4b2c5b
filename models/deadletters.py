"""The dead letter of a step the core refused: one definition for the worker and replay.

A valid event that the state refuses (a payment in the wrong currency, an invoice far in
the future, ...) leaves the core as a :class:`~models.processor.Step` with status
``rejected``; both the Kafka path and ``arscore replay`` turn it into the same
:class:`~schemas.records.DeadLetter`, each with the position its record had.
"""

from __future__ import annotations

from models.processor import Step
from schemas.codec import DecodeError
from schemas.records import DeadLetter, dead_letter


def rejected_letter(step: Step, raw: bytes, *, topic: str, partition: int | None,
                    offset: int | None, failed_at: str) -> DeadLetter:
    """A valid event the core refused, dead-lettered with its original bytes and position
    (``topic`` is the file name in a replay, ``offset`` its line)."""
    return dead_letter(raw, DecodeError(step.reason or "rejected"), topic=topic,
                       partition=partition, offset=offset, failed_at=failed_at,
                       stage="apply", customer_id=step.customer_id,
                       event_id=step.event.event_id if step.event else None)
