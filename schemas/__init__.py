"""The contracts of arscore's topics: JSON Schema files and the Python types that parse them."""

from __future__ import annotations

from schemas.pure_source import prefer_source

prefer_source(__path__)  # ARSCORE_PURE_PYTHON=1: the source, not the compiled modules

from schemas.codec import DecodeError, dumps, loads  # noqa: E402  (after the switch above)
from schemas.events import (  # noqa: E402
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
