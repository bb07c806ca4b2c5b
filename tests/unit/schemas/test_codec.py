"""The orjson codec and the event validators: round trips, garbage, and each refusal's reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from schemas import fields
from schemas.codec import MAX_RECORD_BYTES, DecodeError, dumps, loads
from schemas.contracts import SCHEMA_FOR_EVENT_TYPE, load_schema
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

FAST = settings(max_examples=200, deadline=None)

# --------------------------------------------------------------------------- strategies

ID_CHARS = "".join(chr(c) for c in range(0x21, 0x7F))
ids = st.text(ID_CHARS, min_size=1, max_size=12) | st.text(ID_CHARS, min_size=120, max_size=128)
amounts = (st.decimals(min_value=Decimal("0.0001"), max_value=fields.MAX_AMOUNT, places=4)
           | st.integers(1, 10**12).map(Decimal)
           | st.sampled_from([Decimal("0.0001"), Decimal("1E+3"), fields.MAX_AMOUNT]))
currencies = st.from_regex(r"[A-Z]{3}", fullmatch=True)
_utc_times = st.datetimes(min_value=datetime(2000, 1, 1),
                          max_value=datetime(2099, 12, 31, 23, 59, 59, 999_999),
                          timezones=st.just(UTC))
times = st.builds(lambda t, minutes: t.astimezone(timezone(timedelta(minutes=minutes))),
                  _utc_times, st.integers(-(23 * 60 + 59), 23 * 60 + 59))
_json_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))
metadata = st.dictionaries(st.text(max_size=10), _json_leaf, max_size=32)


@st.composite
def issued_events(draw: st.DrawFn) -> InvoiceIssued:
    issued_at = draw(times)
    due_at = min(issued_at + timedelta(seconds=draw(st.integers(0, 400 * 86_400))),
                 fields.MAX_TIME - timedelta(microseconds=1))
    return InvoiceIssued(
        event_id=draw(ids), customer_id=draw(ids), invoice_id=draw(ids), amount=draw(amounts),
        currency=draw(currencies), issued_at=issued_at, due_at=due_at,
        terms=draw(st.none() | st.text(max_size=64)), metadata=draw(metadata),
    )


payments = st.builds(
    PaymentReceived, event_id=ids, customer_id=ids, amount=amounts, currency=currencies,
    received_at=times, invoice_ids=st.lists(ids, max_size=100, unique=True).map(tuple),
    payment_id=st.none() | ids,
)
adjustments = st.builds(
    InvoiceAdjusted, event_id=ids, customer_id=ids, invoice_id=ids, amount=amounts,
    currency=currencies, adjusted_at=times, kind=st.sampled_from(["credit_note", "write_off"]),
    reason=st.none() | st.text(max_size=500),
)
disputes = st.builds(InvoiceDisputed, event_id=ids, customer_id=ids, invoice_id=ids,
                     disputed_at=times, reason=st.none() | st.text(max_size=500))
resolutions = st.builds(InvoiceDisputeResolved, event_id=ids, customer_id=ids, invoice_id=ids,
                        resolved_at=times, outcome=st.none() | st.text(max_size=500))
valid_events = st.one_of(issued_events(), payments, adjustments, disputes, resolutions)

json_values = st.recursive(
    _json_leaf | st.sampled_from(["", "0", "-1", "1e400", "NaN", "2025-01-02T00:00:00",
                                  "invoice.issued", "c 1", "\U0001f4b8"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=20,
)
ALL_FIELDS = sorted({"event_id", "customer_id", "invoice_id", "invoice_ids", "payment_id",
                     "amount", "currency", "issued_at", "due_at", "received_at", "adjusted_at",
                     "disputed_at", "resolved_at", "kind", "reason", "outcome", "terms",
                     "metadata"})
near_valid = st.fixed_dictionaries(
    {"type": st.sampled_from([*EVENT_TYPES, "refund"]) | json_values,
     "schema_version": st.sampled_from([1, 2, "1", None, True, 1.0])},
    optional={name: json_values | ids | amounts.map(str) | times.map(fields.format_time)
              for name in ALL_FIELDS},
)

# --------------------------------------------------------------------------- round trips


@FAST
@given(valid_events)
def test_round_trip(event: Event) -> None:
    raw = encode_event(event)
    assert decode_event(raw) == event
    assert decode_event(raw.decode()) == event  # str input too
    assert event_from_dict(event_to_dict(event)) == event
    assert encode_event(decode_event(raw)) == raw  # the wire form is canonical


def _date_time_checker() -> FormatChecker:
    checker = FormatChecker()
    if "date-time" not in checker.checkers:  # without rfc3339-validator: strict enough here
        checker.checks("date-time")(
            lambda v: not isinstance(v, str) or bool(fields._RFC3339.fullmatch(v)))
    return checker


VALIDATORS = {t: Draft202012Validator(load_schema(name), format_checker=_date_time_checker())
              for t, name in SCHEMA_FOR_EVENT_TYPE.items()}


@FAST
@given(valid_events)
def test_encoded_events_validate_against_their_schema(event: Event) -> None:
    VALIDATORS[event.type].validate(orjson.loads(encode_event(event)))


def test_decimal_strings_keep_their_exact_value() -> None:
    a = _decode(amount="0.1").amount
    b = _decode(amount="0.2").amount
    assert isinstance(a, Decimal)
    assert a + b == Decimal("0.3")
    assert _decode(amount="1250.10").amount == Decimal("1250.1")
    assert str(_decode(amount="1250.10").amount) == "1250.10"  # scale kept too
    assert _decode(amount=0.1).amount == Decimal("0.1")  # float read via its shortest repr
    assert _decode(amount=12.1).amount == Decimal("12.1")
    assert _decode(amount="999999999999.9999").amount == Decimal("999999999999.9999")
    assert _decode(amount="1.50000").amount == Decimal("1.5")
    assert dumps({"a": Decimal("0.30")}) == b'{"a":"0.30"}'
    assert event_to_dict(_decode(amount=1000))["amount"] == "1000"
    assert fields.format_money(Decimal("1E+3")) == "1000"  # never exponent form on the wire


def test_timestamps_are_normalised_to_utc() -> None:
    event = _decode(issued_at="2025-01-15T09:30:00+05:30", due_at="2025-01-16T00:00:00.5-01:00")
    assert event.issued_at == datetime(2025, 1, 15, 4, 0, tzinfo=UTC)
    assert event.issued_at.tzinfo is UTC
    wire = event_to_dict(event)
    assert wire["issued_at"] == "2025-01-15T04:00:00Z"
    assert wire["due_at"] == "2025-01-16T01:00:00.500000Z"


def test_payment_invoice_ids_are_merged_in_order_without_repeats() -> None:
    event = event_from_dict({**PAYMENT, "invoice_id": "i2", "invoice_ids": ["i1", "i2", "i3"]})
    assert isinstance(event, PaymentReceived)
    assert event.invoice_ids == ("i2", "i1", "i3")
    assert event_to_dict(event)["invoice_ids"] == ["i2", "i1", "i3"]
    assert "invoice_id" not in event_to_dict(event)


def test_unknown_fields_and_nulls_are_ignored() -> None:
    event = _decode(source="sap", terms=None, metadata=None, x={"nested": [1, 2]})
    assert event.terms is None and event.metadata == {}


# --------------------------------------------------------------------------- garbage


def _decode_or_refuse(raw: bytes | str) -> None:
    try:
        decode_event(raw)
    except DecodeError as exc:
        assert exc.reason
        assert str(exc)


@FAST
@given(st.binary(max_size=2048))
def test_garbage_bytes_raise_only_decode_error(raw: bytes) -> None:
    _decode_or_refuse(raw)


@FAST
@given(st.text(max_size=512))
def test_garbage_text_raises_only_decode_error(raw: str) -> None:
    _decode_or_refuse(raw)


@FAST
@given(json_values)
def test_arbitrary_json_raises_only_decode_error(value: Any) -> None:
    _decode_or_refuse(orjson.dumps(value))


@FAST
@given(near_valid)
def test_near_valid_objects_raise_only_decode_error(value: dict[str, Any]) -> None:
    _decode_or_refuse(orjson.dumps(value))


@FAST
@given(valid_events, st.data())
def test_mangled_valid_records_raise_only_decode_error(event: Event, data: st.DataObject) -> None:
    raw = bytearray(encode_event(event))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    _decode_or_refuse(bytes(raw))
    _decode_or_refuse(bytes(raw[: data.draw(st.integers(0, len(raw)))]))


# --------------------------------------------------------------------------- specific refusals

ISSUED: dict[str, Any] = {
    "schema_version": 1, "type": "invoice.issued", "event_id": "e1", "customer_id": "c1",
    "invoice_id": "i1", "amount": "100.00", "currency": "EUR",
    "issued_at": "2025-01-15T09:30:00Z", "due_at": "2025-02-14T00:00:00Z",
}
PAYMENT: dict[str, Any] = {
    "schema_version": 1, "type": "payment.received", "event_id": "p1", "customer_id": "c1",
    "amount": "40", "currency": "EUR", "received_at": "2025-02-01T00:00:00Z",
}
ADJUSTED: dict[str, Any] = {
    "schema_version": 1, "type": "invoice.adjusted", "event_id": "a1", "customer_id": "c1",
    "invoice_id": "i1", "amount": "5", "currency": "EUR", "adjusted_at": "2025-02-01T00:00:00Z",
    "kind": "credit_note",
}
DISPUTED: dict[str, Any] = {
    "schema_version": 1, "type": "invoice.disputed", "event_id": "d1", "customer_id": "c1",
    "invoice_id": "i1", "disputed_at": "2025-02-01T00:00:00Z",
}
RESOLVED: dict[str, Any] = {
    "schema_version": 1, "type": "invoice.dispute_resolved", "event_id": "r1",
    "customer_id": "c1", "invoice_id": "i1", "resolved_at": "2025-02-02T00:00:00Z",
}
BASES = [ISSUED, PAYMENT, ADJUSTED, DISPUTED, RESOLVED]


def _decode(**changes: Any) -> InvoiceIssued:
    event = decode_event(dumps({**ISSUED, **changes}))
    assert isinstance(event, InvoiceIssued)
    return event


def _refusal(raw: bytes | str | dict[str, Any]) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        if isinstance(raw, dict):
            decode_event(dumps(raw))
        else:
            decode_event(raw)
    return caught.value


def test_bases_are_valid() -> None:
    assert [event_from_dict(b).type for b in BASES] == list(EVENT_TYPES)


@pytest.mark.parametrize(
    ("base", "name"),
    [pytest.param(b, name, id=f"{b['type']}-{name}") for b in BASES for name in b],
)
def test_missing_field_is_named(base: dict[str, Any], name: str) -> None:
    for record in ({k: v for k, v in base.items() if k != name}, {**base, name: None}):
        error = _refusal(record)
        assert error.field == name
        assert error.reason == "is required"
        assert str(error) == f"{name}: is required"


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"amount": -5}, "amount", "must be positive"),
        ({"amount": "-5.00"}, "amount", "is not a decimal number: '-5.00'"),
        ({"amount": 0}, "amount", "must be positive"),
        ({"amount": "0.0000"}, "amount", "must be positive"),
        ({"amount": -0.0}, "amount", "must be positive"),
        ({"amount": 0.00001}, "amount", "has more than 4 decimal places"),
        ({"amount": "12.34567"}, "amount", "has more than 4 decimal places"),
        ({"amount": 1000000000000.5}, "amount", "is larger than 1000000000000"),
        ({"amount": "1000000000000.0001"}, "amount", "is larger than 1000000000000"),
        ({"amount": 10**15}, "amount", "is larger than 1000000000000"),
        ({"amount": "NaN"}, "amount", "is not a decimal number: 'NaN'"),
        ({"amount": "Infinity"}, "amount", "is not a decimal number: 'Infinity'"),
        ({"amount": "1e3"}, "amount", "is not a decimal number: '1e3'"),
        ({"amount": " 5"}, "amount", "is not a decimal number: ' 5'"),
        ({"amount": "1_000"}, "amount", "is not a decimal number: '1_000'"),
        ({"amount": "\u0663"}, "amount", "is not a decimal number: '\u0663'"),
        ({"amount": True}, "amount", "must be a number or a decimal string, got bool"),
        ({"amount": [1]}, "amount", "must be a number or a decimal string, got list"),
        ({"currency": "eur"}, "currency", "must be a 3-letter upper-case ISO 4217 code"),
        ({"currency": "EUR\n"}, "currency", "must be a 3-letter upper-case ISO 4217 code"),
        ({"issued_at": "2025-01-15T09:30:00"}, "issued_at",
         "must carry a time zone (e.g. Z or +02:00)"),
        ({"issued_at": "1970-01-01T00:00:00Z"}, "issued_at", "is outside the years 2000-2099"),
        ({"due_at": "2200-01-01T00:00:00Z"}, "due_at", "is outside the years 2000-2099"),
        ({"issued_at": "1999-12-31T23:30:00-00:00"}, "issued_at",
         "is outside the years 2000-2099"),
        ({"due_at": "2099-12-31T23:00:00-02:00"}, "due_at", "is outside the years 2000-2099"),
        ({"issued_at": "0001-01-01T00:00:00+05:00"}, "issued_at",
         "is outside the years 2000-2099"),
        ({"due_at": "9999-12-31T23:59:59-05:00"}, "due_at", "is outside the years 2000-2099"),
        ({"issued_at": "2025-02-30T00:00:00Z"}, "issued_at",
         "is not an RFC 3339 timestamp: '2025-02-30T00:00:00Z'"),
        ({"issued_at": "2025-01-15 09:30:00Z"}, "issued_at",
         "is not an RFC 3339 timestamp: '2025-01-15 09:30:00Z'"),
        ({"issued_at": "2025-01-15T09:30Z"}, "issued_at",
         "is not an RFC 3339 timestamp: '2025-01-15T09:30Z'"),
        ({"issued_at": "20250115T093000Z"}, "issued_at",
         "is not an RFC 3339 timestamp: '20250115T093000Z'"),
        ({"issued_at": "2025-01-15t09:30:00z"}, "issued_at",
         "is not an RFC 3339 timestamp: '2025-01-15t09:30:00z'"),
        ({"issued_at": "2025-01-15T09:30:00Z\n"}, "issued_at",
         "is not an RFC 3339 timestamp: '2025-01-15T09:30:00Z\\n'"),
        ({"issued_at": 1736933400}, "issued_at", "must be an RFC 3339 string, got int"),
        ({"due_at": "2025-01-15T09:29:59Z"}, "due_at", "must not be before issued_at"),
        ({"type": "refund"}, "type", "unknown event type 'refund'"),
        ({"type": 7}, "type", "unknown event type '7'"),
        ({"schema_version": 2}, "schema_version", "unsupported schema version 2, expected 1"),
        ({"schema_version": "1"}, "schema_version",
         "unsupported schema version '1', expected 1"),
        ({"schema_version": True}, "schema_version",
         "unsupported schema version True, expected 1"),
        ({"metadata": 0}, "metadata", "must be an object"),
        ({"metadata": []}, "metadata", "must be an object"),
        ({"metadata": {str(i): i for i in range(33)}}, "metadata", "has more than 32 entries"),
        ({"terms": "N" * 65}, "terms", "is longer than 64 characters"),
        ({"terms": 30}, "terms", "must be a string, got int"),
    ],
    ids=lambda v: repr(v)[:50] if isinstance(v, dict) else None,
)
def test_refusal_reason(changes: dict[str, Any], field: str, reason: str) -> None:
    error = _refusal({**ISSUED, **changes})
    assert (error.field, error.reason) == (field, reason)


@pytest.mark.parametrize(
    "bad_id",
    ["cust\u00e9", "c 1", "\U0001f600", "", "c\t1", "c1\n", "\u00a0c1", "c\x7f", "\u0441ust",
     "a" * 129],
)
@pytest.mark.parametrize("field", ["event_id", "customer_id", "invoice_id"])
def test_odd_ids_are_refused(field: str, bad_id: str) -> None:
    error = _refusal({**ISSUED, field: bad_id})
    assert error.field == field
    assert error.reason == "must be 1-128 printable ASCII characters without spaces"


def test_id_edges_are_accepted() -> None:
    assert _decode(customer_id="a" * 128).customer_id == "a" * 128
    assert _decode(customer_id="~!@#$%^&*()").customer_id == "~!@#$%^&*()"


def test_payment_invoice_ids_refusals() -> None:
    assert _refusal({**PAYMENT, "invoice_ids": ["i1", 7]}).field == "invoice_ids[1]"
    assert _refusal({**PAYMENT, "invoice_ids": ["i 1"]}).field == "invoice_ids[0]"
    too_many = _refusal({**PAYMENT, "invoice_ids": [f"i{n}" for n in range(101)]})
    assert (too_many.field, too_many.reason) == (
        "invoice_ids", "must be a list of at most 100 invoice ids")
    assert _refusal({**PAYMENT, "invoice_ids": "i1"}).field == "invoice_ids"
    assert _refusal({**PAYMENT, "payment_id": "\U0001f4b8"}).field == "payment_id"


def test_adjustment_kind_refusal() -> None:
    error = _refusal({**ADJUSTED, "kind": "refund"})
    assert (error.field, error.reason) == ("kind", "must be one of credit_note, write_off")


@pytest.mark.parametrize("raw", [b"NaN", b'{"amount": NaN}', b"1e400", b"-Infinity"])
def test_non_finite_json_is_not_json(raw: bytes) -> None:
    assert _refusal(raw).reason.startswith("not valid JSON: ")


def test_non_finite_numbers_in_a_record() -> None:
    record = dumps(ISSUED).replace(b'"100.00"', b"1e400")
    assert b"1e400" in record
    assert "infinity" in _refusal(record).reason
    assert _refusal(dumps(ISSUED).replace(b'"100.00"', b"NaN")).reason.startswith(
        "not valid JSON")
    for value in (float("nan"), float("inf"), float("-inf")):  # a dict built in Python
        with pytest.raises(DecodeError) as caught:
            event_from_dict({**ISSUED, "amount": value})
        assert (caught.value.field, caught.value.reason) == ("amount", "must be finite")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[1, 2]", "list"), (b"42", "int"), (b"3.5", "float"), (b'"event"', "str"),
     (b"null", "NoneType"), (b"true", "bool")],
)
def test_non_object_json_is_refused(raw: bytes, kind: str) -> None:
    error = _refusal(raw)
    assert error.reason == f"an event must be a JSON object, got {kind}"
    assert error.field is None


@pytest.mark.parametrize(
    "raw", [b'{"type": "\xff"}', b"\xc3\x28", b'{"a": "\xed\xa0\x80"}', b"\xef\xbb\xbf{}"])
def test_invalid_utf8_is_refused(raw: bytes) -> None:
    assert _refusal(raw).reason.startswith("not valid JSON: ")


def test_lone_surrogate_in_text_input_is_refused() -> None:
    assert _refusal('{"type": "\ud800"}').reason.startswith("not valid JSON: ")
    assert _refusal('{"type": "\\ud800"}').reason.startswith("not valid JSON: ")


def test_oversized_record_is_refused_before_parsing() -> None:
    padding = "x" * MAX_RECORD_BYTES
    raw = dumps({**ISSUED, "terms": None, "note": padding})
    error = _refusal(raw)
    assert error.reason == f"record is {len(raw)} bytes, larger than the 1000000 limit"
    assert loads(b" " * (MAX_RECORD_BYTES - 2) + b"{}") == {}  # exactly at the limit: parsed
    with pytest.raises(DecodeError, match="larger than"):
        loads(b" " * (MAX_RECORD_BYTES - 1) + b"{}")


def test_oversized_text_is_measured_in_utf8_bytes() -> None:
    text = '{"note": "' + "\u20ac" * 400_000 + '"}'  # 400k characters, 1.2 MB as UTF-8
    assert len(text) < MAX_RECORD_BYTES < len(text.encode())
    assert re.fullmatch(r"record is 1200012 bytes, larger than the 1000000 limit",
                        _refusal(text).reason)


def test_deeply_nested_json_is_refused() -> None:
    assert _refusal(b"[" * 5000 + b"]" * 5000).reason.startswith("not valid JSON: ")
    assert _refusal(b'{"metadata": ' * 2000 + b"1" + b"}" * 2000).reason.startswith(
        "not valid JSON: ")


def test_decode_error_message() -> None:
    assert str(DecodeError("must be positive", field="amount")) == "amount: must be positive"
    assert str(DecodeError("not valid JSON")) == "not valid JSON"
    assert isinstance(DecodeError("x"), ValueError)
