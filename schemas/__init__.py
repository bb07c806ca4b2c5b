"""The contracts of arscore's topics: JSON Schema files and the Python types that parse them."""

from __future__ import annotations

from schemas.codec import DecodeError, dumps, loads
from schemas.events import (
    EVENT_TYPES,
    Event,
    InvoiceAdjusted,
    InvoiceDisputed,
    InvoiceDisputeResolved,
    InvoiceIssued,
    PaymentReceived,
    decode_event,
    encode_event,
    event_from_dict,
    event_to_dict,
)

__all__ = [
    "EVENT_TYPES",
    "DecodeError",
    "Event",
    "InvoiceAdjusted",
    "InvoiceDisputeResolved",
    "InvoiceDisputed",
    "InvoiceIssued",
    "PaymentReceived",
    "decode_event",
    "dumps",
    "encode_event",
    "event_from_dict",
    "event_to_dict",
    "loads",
]
