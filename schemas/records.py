"""Output records: the score (``ar.scores``), the alert (``ar.alerts``), the dead letter
(``ar.deadletter``).

Built by the core as plain dataclasses; :func:`to_dict` gives the wire form that the
JSON Schema files in ``schemas/json/`` describe.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import SCHEMA_VERSION, DecodeError, dumps

MAX_ORIGINAL_BYTES = 256 * 1024
"""Original bytes kept whole in a dead letter up to this size (see :func:`dead_letter`)."""

BANDS = ("low", "medium", "high", "critical")
ALERT_KINDS = ("entered_high_risk", "risk_spike", "high_risk_overdue")
TREATMENTS = ("none", "friendly_reminder", "call", "escalate", "credit_hold")


@dataclass(frozen=True, slots=True)
class Reason:
    """One contributing factor, in plain words, with its share of the score's push."""

    code: str
    text: str
    weight: float


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """The latest view of one customer; ``ar.scores`` is keyed (and compacted) by customer_id."""

    customer_id: str
    scored_at: str
    event_id: str
    p_late: float
    band: str
    priority: str
    open_amount: str
    overdue_amount: str
    currency: str | None
    open_invoices: int
    low_confidence: bool
    treatment: str
    model_version: str
    labels_seen: int
    reasons: tuple[Reason, ...] = ()
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert for on-call and collectors.

    ``alert_id`` is deterministic so consumers can de-duplicate.
    """

    alert_id: str
    kind: str
    customer_id: str
    raised_at: str
    band: str
    p_late: float
    previous_p_late: float
    priority: str
    treatment: str
    message: str
    invoice_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Bad input, kept whole: the reason, where it came from, and the original bytes (base64)."""

    reason: str
    error_field: str | None
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    original_b64: str
    original_text: str | None
    failed_at: str
    customer_id: str | None = None
    event_id: str | None = None
    stage: str = "decode"  # "decode" (could not parse) or "apply" (valid, but refused by the core)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


def dead_letter(
    raw: bytes, error: DecodeError, *, topic: str, partition: int | None, offset: int | None,
    failed_at: str, stage: str = "decode", customer_id: str | None = None,
    event_id: str | None = None,
) -> DeadLetter:
    """Wrap the original bytes and the error; text is kept too when the bytes are UTF-8.

    A record too large to carry whole (base64 grows it by a third, past what a broker takes
    in one message) keeps its first :data:`MAX_ORIGINAL_BYTES` bytes, and ``extra`` says so
    with the full size and SHA-256: the whole record stays in the source topic at
    ``source_offset``, so nothing is lost and the dead letter can still be sent.
    """
    extra: dict[str, Any] = {}
    kept = raw
    if len(raw) > MAX_ORIGINAL_BYTES:
        kept = raw[:MAX_ORIGINAL_BYTES]
        extra = {"original_truncated": True, "original_size": len(raw),
                 "original_sha256": hashlib.sha256(raw).hexdigest()}
    try:
        as_text: str | None = kept.decode("utf-8") if not extra else None
    except UnicodeDecodeError:
        as_text = None
    return DeadLetter(
        reason=error.reason, error_field=error.field, source_topic=topic,
        source_partition=partition, source_offset=offset,
        original_b64=base64.b64encode(kept).decode("ascii"),
        original_text=as_text if as_text is None or len(as_text) <= 10_000 else None,
        failed_at=failed_at, customer_id=customer_id, event_id=event_id, stage=stage,
        extra=extra,
    )


def to_dict(record: ScoreRecord | AlertRecord | DeadLetter) -> dict[str, Any]:
    """The wire form: plain dicts and lists.

    Hand-written rather than ``dataclasses.asdict`` (which deep-copies every value): this
    runs once per emitted score and was the core's largest single cost.
    """
    out = {name: getattr(record, name) for name in record.__dataclass_fields__}
    if "reasons" in out:
        out["reasons"] = [{"code": r.code, "text": r.text, "weight": r.weight}
                          for r in out["reasons"]]
    if isinstance(record, DeadLetter):
        if out["extra"]:
            out["extra"] = dict(out["extra"])
        else:
            del out["extra"]
    return out


def encode(record: ScoreRecord | AlertRecord | DeadLetter) -> bytes:
    return dumps(to_dict(record))
