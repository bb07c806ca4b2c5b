"""Input events: ``invoice.*`` on the invoices topic and ``payment.received`` on the payments topic.

Each type is a frozen dataclass; :func:`decode_event` turns raw bytes into one of
them or raises :class:`~schemas.codec.DecodeError` with a reason a person can act on.
The JSON Schema files in ``schemas/json/`` are the published contract; a test keeps
this module and those files in agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from schemas import fields as f
from schemas.codec import SCHEMA_VERSION, DecodeError, dumps, loads


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    """An invoice was issued: the unit of prediction (will it be paid late?)."""

    event_id: str
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    issued_at: datetime
    due_at: datetime
    terms: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    type = "invoice.issued"

    @property
    def at(self) -> datetime:
        return self.issued_at


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    """Cash received; may name invoices (applied in the order given) or none (oldest first)."""

    event_id: str
    customer_id: str
    amount: Decimal
    currency: str
    received_at: datetime
    invoice_ids: tuple[str, ...] = ()
    payment_id: str | None = None
    type = "payment.received"

    @property
    def at(self) -> datetime:
        return self.received_at


@dataclass(frozen=True, slots=True)
class InvoiceAdjusted:
    """A credit note or write-off lowering an invoice's open amount."""

    event_id: str
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    adjusted_at: datetime
    kind: str  # "credit_note" | "write_off"
    reason: str | None = None
    type = "invoice.adjusted"

    @property
    def at(self) -> datetime:
        return self.adjusted_at


@dataclass(frozen=True, slots=True)
class InvoiceDisputed:
    """The customer disputes an invoice: still tracked, but no overdue alert while disputed."""

    event_id: str
    customer_id: str
    invoice_id: str
    disputed_at: datetime
    reason: str | None = None
    type = "invoice.disputed"

    @property
    def at(self) -> datetime:
        return self.disputed_at


@dataclass(frozen=True, slots=True)
class InvoiceDisputeResolved:
    """A dispute ended; the invoice is collectable again."""

    event_id: str
    customer_id: str
    invoice_id: str
    resolved_at: datetime
    outcome: str | None = None
    type = "invoice.dispute_resolved"

    @property
    def at(self) -> datetime:
        return self.resolved_at


Event = InvoiceIssued | PaymentReceived | InvoiceAdjusted | InvoiceDisputed | InvoiceDisputeResolved
ADJUSTMENT_KINDS = ("credit_note", "write_off")


def _invoice_issued(d: Mapping[str, Any]) -> InvoiceIssued:
    issued_at, due_at = f.timestamp(d, "issued_at"), f.timestamp(d, "due_at")
    if due_at < issued_at:
        raise DecodeError("must not be before issued_at", field="due_at")
    metadata = d.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):  # not ``or {}``: 0, "" and [] are errors, not "none"
        raise DecodeError("must be an object", field="metadata")
    if len(metadata) > 32:
        raise DecodeError("has more than 32 entries", field="metadata")
    return InvoiceIssued(
        event_id=f.ident(d, "event_id"), customer_id=f.ident(d, "customer_id"),
        invoice_id=f.ident(d, "invoice_id"), amount=f.money(d, "amount"),
        currency=f.currency(d), issued_at=issued_at, due_at=due_at,
        terms=f.text(d, "terms", max_len=64), metadata=metadata,
    )


def _invoice_ids(d: Mapping[str, Any]) -> tuple[str, ...]:
    ids: list[str] = []
    if d.get("invoice_id") is not None:
        ids.append(f.ident(d, "invoice_id"))
    many = d.get("invoice_ids")
    if many is not None:
        if not isinstance(many, list) or len(many) > 100:
            raise DecodeError("must be a list of at most 100 invoice ids", field="invoice_ids")
        for i, item in enumerate(many):
            ids.append(f.ident({f"invoice_ids[{i}]": item}, f"invoice_ids[{i}]"))
    return tuple(dict.fromkeys(ids))  # de-duplicated, order kept


def _payment_received(d: Mapping[str, Any]) -> PaymentReceived:
    return PaymentReceived(
        event_id=f.ident(d, "event_id"), customer_id=f.ident(d, "customer_id"),
        amount=f.money(d, "amount"), currency=f.currency(d),
        received_at=f.timestamp(d, "received_at"), invoice_ids=_invoice_ids(d),
        payment_id=f.optional_ident(d, "payment_id"),
    )


def _invoice_adjusted(d: Mapping[str, Any]) -> InvoiceAdjusted:
    kind = f.require(d, "kind")
    if kind not in ADJUSTMENT_KINDS:
        raise DecodeError(f"must be one of {', '.join(ADJUSTMENT_KINDS)}", field="kind")
    return InvoiceAdjusted(
        event_id=f.ident(d, "event_id"), customer_id=f.ident(d, "customer_id"),
        invoice_id=f.ident(d, "invoice_id"), amount=f.money(d, "amount"),
        currency=f.currency(d), adjusted_at=f.timestamp(d, "adjusted_at"), kind=kind,
        reason=f.text(d, "reason"),
    )


def _invoice_disputed(d: Mapping[str, Any]) -> InvoiceDisputed:
    return InvoiceDisputed(
        event_id=f.ident(d, "event_id"), customer_id=f.ident(d, "customer_id"),
        invoice_id=f.ident(d, "invoice_id"), disputed_at=f.timestamp(d, "disputed_at"),
        reason=f.text(d, "reason"),
    )


def _dispute_resolved(d: Mapping[str, Any]) -> InvoiceDisputeResolved:
    return InvoiceDisputeResolved(
        event_id=f.ident(d, "event_id"), customer_id=f.ident(d, "customer_id"),
        invoice_id=f.ident(d, "invoice_id"), resolved_at=f.timestamp(d, "resolved_at"),
        outcome=f.text(d, "outcome"),
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Event]] = {
    "invoice.issued": _invoice_issued,
    "payment.received": _payment_received,
    "invoice.adjusted": _invoice_adjusted,
    "invoice.disputed": _invoice_disputed,
    "invoice.dispute_resolved": _dispute_resolved,
}
EVENT_TYPES = tuple(_PARSERS)


def event_from_dict(d: Any) -> Event:
    """Validate a parsed JSON value and build the event it describes.

    >>> e = event_from_dict({"schema_version": 1, "type": "invoice.disputed", "event_id": "e1",
    ...     "customer_id": "c1", "invoice_id": "i1", "disputed_at": "2025-01-02T00:00:00Z"})
    >>> e.invoice_id, e.disputed_at.isoformat()
    ('i1', '2025-01-02T00:00:00+00:00')
    >>> event_from_dict({"schema_version": 1, "type": "refund"})
    Traceback (most recent call last):
    ...
    schemas.codec.DecodeError: type: unknown event type 'refund'
    """
    if not isinstance(d, dict):
        raise DecodeError(f"an event must be a JSON object, got {type(d).__name__}")
    kind = f.require(d, "type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise DecodeError(f"unknown event type {str(kind)[:40]!r}", field="type")
    f.schema_version(d, SCHEMA_VERSION)
    return parser(d)


def decode_event(raw: bytes | str) -> Event:
    """Bytes off a topic or a line of a file -> a valid event, or DecodeError with the reason."""
    return event_from_dict(loads(raw))


def event_to_dict(event: Event) -> dict[str, Any]:
    """The wire form of an event (the inverse of :func:`event_from_dict`)."""
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "type": event.type}
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if value is None or (name in ("metadata", "invoice_ids") and not value):
            continue
        if isinstance(value, datetime):
            value = f.format_time(value)
        elif isinstance(value, Decimal):
            value = f.format_money(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def encode_event(event: Event) -> bytes:
    return dumps(event_to_dict(event))
