"""Score and alert records off the wire -> database rows, or a :class:`DecodeError`.

The checks follow ``schemas/json/score.schema.json`` and ``alert.schema.json`` (the
contracts this service consumes): a record that breaks them is counted and skipped, never
half-applied. Reasons name the field, never its value, so they are safe to log (no
customer data in logs).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from schemas.codec import SCHEMA_VERSION, DecodeError, dumps, loads

BANDS = frozenset(("low", "medium", "high", "critical"))
TREATMENTS = frozenset(("none", "friendly_reminder", "call", "escalate", "credit_hold"))
ALERT_KINDS = frozenset(("entered_high_risk", "risk_spike", "high_risk_overdue"))
_ID = re.compile(r"[\x21-\x7e]{1,128}")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_TIMESTAMP = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
                        r"(?:Z|[+-][01][0-9]:[0-5][0-9])")
SCORE_FIELDS = frozenset(("schema_version", "customer_id", "scored_at", "event_id", "p_late",
                          "band", "priority", "open_amount", "overdue_amount", "currency",
                          "open_invoices", "low_confidence", "treatment", "model_version",
                          "labels_seen", "reasons"))
ALERT_FIELDS = frozenset(("schema_version", "alert_id", "kind", "customer_id", "raised_at",
                          "band", "p_late", "previous_p_late", "priority", "treatment",
                          "message", "invoice_id", "reasons"))
STORED_TS = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Timestamps are stored fixed-width in UTC so that text order is time order."""


def _doc(raw: bytes | None, fields: frozenset[str]) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("record has no value (tombstone)")
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise DecodeError("record is not a JSON object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DecodeError(f"unknown version (this service reads {SCHEMA_VERSION})",
                          field="schema_version")
    missing = sorted(fields - doc.keys())
    if missing:
        raise DecodeError("missing", field=",".join(missing))
    extra = sorted(doc.keys() - fields)
    if extra:
        raise DecodeError("not in the contract", field=",".join(extra)[:200])
    return doc


def _id(doc: dict[str, Any], name: str, nullable: bool = False) -> str | None:
    value = doc[name]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise DecodeError("not an id (1-128 printable ASCII characters)", field=name)
    return value


def _choice(doc: dict[str, Any], name: str, allowed: frozenset[str]) -> str:
    value = doc[name]
    if not isinstance(value, str) or value not in allowed:
        raise DecodeError(f"not one of {', '.join(sorted(allowed))}", field=name)
    return value


def _probability(doc: dict[str, Any], name: str) -> float:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise DecodeError("not a probability between 0 and 1", field=name)
    return float(value)


def _decimal(doc: dict[str, Any], name: str) -> tuple[str, float]:
    value = doc[name]
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or len(value) > 40:
        raise DecodeError("not a non-negative decimal string", field=name)
    return value, float(value)  # the pattern above is a valid float literal: no Decimal needed


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise DecodeError("not a non-negative integer", field=name)
    return value


_CANONICAL_TS = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]"
                           r"(\.[0-9]{1,6})?Z")


def stored_from_wire(value: Any, name: str) -> str:
    """A record's timestamp -> its stored form. arscore writes UTC with ``Z``: those are
    only padded (strftime was a tenth of the decode time); other zones are converted.

    >>> stored_from_wire("2025-02-14T00:00:00.5Z", "t"), stored_from_wire("2025-02-14T01:00:00+01:00", "t")
    ('2025-02-14T00:00:00.500000Z', '2025-02-14T00:00:00.000000Z')
    """
    if isinstance(value, str) and (m := _CANONICAL_TS.fullmatch(value)):
        frac = m.group(1) or "."
        stored = value[:19] + frac.ljust(7, "0") + "Z"
        try:
            datetime.fromisoformat(stored)  # a real date (no 2025-02-30)
        except ValueError:
            raise DecodeError("not an RFC 3339 timestamp with a zone", field=name) from None
        return stored
    return stored_ts(parse_ts(value, name))


def parse_ts(value: Any, name: str) -> datetime:
    """An RFC 3339 timestamp with a zone -> aware UTC datetime, or DecodeError."""
    if not isinstance(value, str) or len(value) > 40 or not _TIMESTAMP.fullmatch(value):
        raise DecodeError("not an RFC 3339 timestamp with a zone", field=name)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise DecodeError("not an RFC 3339 timestamp with a zone", field=name) from None


def stored_ts(when: datetime) -> str:
    """Fixed-width UTC, so that text order is time order.

    >>> stored_ts(parse_ts("2025-02-14T01:00:00+01:00", "t"))
    '2025-02-14T00:00:00.000000Z'
    """
    return when.strftime(STORED_TS)


def wire_ts(stored: str) -> str:
    """Stored fixed-width UTC -> arscore's wire form (microseconds only when not zero).

    >>> wire_ts("2025-02-14T00:00:00.000000Z"), wire_ts("2025-02-14T00:00:00.500000Z")
    ('2025-02-14T00:00:00Z', '2025-02-14T00:00:00.5Z')
    """
    head, _, frac = stored.rstrip("Z").partition(".")
    frac = frac.rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def _reasons(doc: dict[str, Any]) -> str:
    value = doc["reasons"]
    if not isinstance(value, list):
        raise DecodeError("not a list", field="reasons")
    for item in value:
        if (not isinstance(item, dict) or item.keys() != {"code", "text", "weight"}
                or not isinstance(item["code"], str) or not item["code"]
                or not isinstance(item["text"], str)
                or isinstance(item["weight"], bool)
                or not isinstance(item["weight"], int | float)):
            raise DecodeError("each reason needs exactly code, text and a numeric weight",
                              field="reasons")
    return dumps(value).decode()


OVERDUE_CODES = frozenset(("overdue_share", "aging_1_30", "aging_31_60", "aging_61_90",
                           "aging_90_plus", "max_days_past_due"))
_OLDEST = re.compile(r"oldest ([0-9]{1,5}) days past due")


def oldest_days_past_due(reasons: list[dict[str, Any]]) -> int | None:
    """Days past due of the customer's oldest open invoice, when the score says it.

    The score record has no due dates; the worker states the figure only in the overdue
    reason's words, and only when that reason is among the top ones. Read from there (exact
    when present), or None: the worklist shows a blank rather than a guess. A field in
    score.schema.json would make it always known.

    >>> text = "1.00 EUR overdue, oldest 37 days past due"
    >>> oldest_days_past_due([{"code": "aging_31_60", "text": text, "weight": 1}])
    37
    >>> oldest_days_past_due([{"code": "late_ratio", "text": "oldest 37 days past due", "weight": 1}]) is None
    True
    """
    for reason in reasons:
        if reason["code"] in OVERDUE_CODES and (m := _OLDEST.search(reason["text"])):
            return int(m.group(1))
    return None


def score_row(raw: bytes | None) -> dict[str, Any]:
    """A score record -> a ``latest_scores`` row.

    >>> score_row(b'{"schema_version": 2}')
    Traceback (most recent call last):
    ...
    schemas.codec.DecodeError: schema_version: unknown version (this service reads 1)
    """
    doc = _doc(raw, SCORE_FIELDS)
    priority, priority_value = _decimal(doc, "priority")
    open_amount, _ = _decimal(doc, "open_amount")
    overdue_amount, overdue_value = _decimal(doc, "overdue_amount")
    currency = doc["currency"]
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.fullmatch(currency)):
        raise DecodeError("not an ISO 4217 code", field="currency")
    if not isinstance(doc["low_confidence"], bool):
        raise DecodeError("not a boolean", field="low_confidence")
    model_version = doc["model_version"]
    if not isinstance(model_version, str) or not model_version:
        raise DecodeError("not a non-empty string", field="model_version")
    return {
        "customer_id": _id(doc, "customer_id"),
        "scored_at": stored_from_wire(doc["scored_at"], "scored_at"),
        "event_id": _id(doc, "event_id"),
        "p_late": _probability(doc, "p_late"),
        "band": _choice(doc, "band", BANDS),
        "priority": priority,
        "priority_value": priority_value,
        "open_amount": open_amount,
        "overdue_amount": overdue_amount,
        "currency": currency,
        "open_invoices": _count(doc, "open_invoices"),
        "low_confidence": doc["low_confidence"],
        "treatment": _choice(doc, "treatment", TREATMENTS),
        "model_version": model_version[:200],
        "labels_seen": _count(doc, "labels_seen"),
        "reasons": _reasons(doc),
        "overdue_value": overdue_value,
        "oldest_days_past_due": oldest_days_past_due(doc["reasons"]) if overdue_value else None,
    }


def alert_row(raw: bytes | None) -> dict[str, Any]:
    """An alert record -> an ``alerts`` row."""
    doc = _doc(raw, ALERT_FIELDS)
    message = doc["message"]
    if not isinstance(message, str) or not message:
        raise DecodeError("not a non-empty string", field="message")
    priority, _ = _decimal(doc, "priority")
    return {
        "alert_id": _id(doc, "alert_id"),
        "kind": _choice(doc, "kind", ALERT_KINDS),
        "customer_id": _id(doc, "customer_id"),
        "raised_at": stored_from_wire(doc["raised_at"], "raised_at"),
        "band": _choice(doc, "band", BANDS),
        "p_late": _probability(doc, "p_late"),
        "previous_p_late": _probability(doc, "previous_p_late"),
        "priority": priority,
        "treatment": _choice(doc, "treatment", TREATMENTS),
        "message": message[:2000],
        "invoice_id": _id(doc, "invoice_id", nullable=True),
        "reasons": _reasons(doc),
    }
