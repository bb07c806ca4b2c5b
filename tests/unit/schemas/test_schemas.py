"""The JSON Schema files in schemas/json/ and the Python codec describe the same contract.

Each file must be a valid draft 2020-12 schema; its ``examples`` must validate (and, for
input events, decode); every ``x-invalid-examples`` value must be refused by the schema
and by the codec; and the codec's output must validate. A differential test mutates the
examples field by field with awkward values and checks that schema and codec agree.

Two validator details are pinned here so the test means the same on every machine:

* ``format: date-time`` is only asserted by jsonschema when the optional
  ``rfc3339-validator`` package is installed; without it, a small RFC 3339 checker is
  registered instead.
* jsonschema evaluates ``pattern`` with Python's ``re.search``, where ``$`` also matches
  before a final newline; JSON Schema means ECMA-262, where it does not. The "ECMA"
  validator below anchors a trailing ``$`` at the very end, as ECMA-262 does.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator

from schemas import events, records
from schemas.codec import DecodeError, dumps, loads
from schemas.contracts import (
    SCHEMA_FILES,
    SCHEMA_FOR_EVENT_TYPE,
    SCHEMA_FOR_RECORD,
    load_schema,
    schema_dir,
)
from schemas.events import EVENT_TYPES, event_from_dict, event_to_dict
from schemas.records import AlertRecord, DeadLetter, Reason, ScoreRecord

# --------------------------------------------------------------------------- validators

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def _is_rfc3339(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    m = _RFC3339.fullmatch(instance)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if m[7] is not None and (int(m[7]) > 23 or int(m[8]) > 59):
        return False
    try:  # a leap second (:60) is valid RFC 3339
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    if "date-time" not in checker.checkers:  # rfc3339-validator is not installed
        checker.checks("date-time")(_is_rfc3339)
    return checker


FORMATS = _format_checker()


def _ecma_pattern(validator: Validator, pattern: str, instance: Any,
                  schema: dict[str, Any]) -> Iterator[ValidationError]:
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    if validator.is_type(instance, "string") and not re.search(anchored, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def validator(name: str) -> Validator:
    """ECMA-faithful validator with format assertion on."""
    return EcmaValidator(load_schema(name), format_checker=FORMATS)


def plain_validator(name: str) -> Validator:
    """Stock jsonschema, as a downstream Python consumer would use it."""
    return Draft202012Validator(load_schema(name), format_checker=FORMATS)


INPUT_FILES = list(SCHEMA_FOR_EVENT_TYPE.values())
OUTPUT_FILES = list(SCHEMA_FOR_RECORD.values())
RECORD_CLASSES = {"ScoreRecord": ScoreRecord, "AlertRecord": AlertRecord,
                  "DeadLetter": DeadLetter}
EVENT_CLASSES = {cls.type: cls for cls in (
    events.InvoiceIssued, events.PaymentReceived, events.InvoiceAdjusted,
    events.InvoiceDisputed, events.InvoiceDisputeResolved)}


def invalid_cases(files: list[str]) -> list[Any]:
    return [
        pytest.param(name, case["value"], id=f"{name.removesuffix('.schema.json')}: "
                                              f"{case['reason']}")
        for name in files for case in load_schema(name)["x-invalid-examples"]
    ]


def example_cases(files: list[str]) -> list[Any]:
    return [pytest.param(name, ex, id=f"{name.removesuffix('.schema.json')}[{i}]")
            for name in files for i, ex in enumerate(load_schema(name)["examples"])]


# --------------------------------------------------------------------------- the files


def test_contracts_module_lists_every_file() -> None:
    on_disk = sorted(p.name for p in schema_dir().glob("*.schema.json"))
    assert on_disk == sorted(SCHEMA_FILES)
    assert set(SCHEMA_FOR_EVENT_TYPE) == set(EVENT_TYPES)
    assert (schema_dir() / "README.md").is_file()
    assert load_schema("score") == load_schema("score.schema.json")
    with pytest.raises(KeyError):
        load_schema("../pyproject")


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_file_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://arscore.dev/schemas/{name}"
    assert schema["title"] and schema["description"]
    assert schema["properties"]["schema_version"]["const"] == 1
    assert "schema_version" in schema["required"]
    assert len(schema["examples"]) >= 2
    assert len(schema["x-invalid-examples"]) >= 4
    for case in schema["x-invalid-examples"]:
        assert set(case) == {"reason", "value"} and case["reason"]


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in schema.get("properties", {}).items():
        yield key, sub
        yield from _properties(sub)
    for sub in schema.get("$defs", {}).values():
        yield from _properties(sub)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_property_has_a_description(name: str) -> None:
    missing = [key for key, sub in _properties(load_schema(name)) if not sub.get("description")]
    assert not missing


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_input_schema_matches_event_dataclass(event_type: str) -> None:
    schema = load_schema(SCHEMA_FOR_EVENT_TYPE[event_type])
    cls = EVENT_CLASSES[event_type]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    no_default = {n for n, f in fields.items()
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert schema["properties"]["type"]["const"] == event_type
    assert set(schema["required"]) == {"schema_version", "type", *no_default}
    assert set(fields) <= set(schema["properties"])
    extra = set(schema["properties"]) - set(fields) - {"schema_version", "type"}
    assert extra == ({"invoice_id"} if event_type == "payment.received" else set())
    assert schema["additionalProperties"] is True  # producers may add their own fields


@pytest.mark.parametrize("record", sorted(SCHEMA_FOR_RECORD))
def test_output_schema_matches_record_dataclass(record: str) -> None:
    schema = load_schema(SCHEMA_FOR_RECORD[record])
    fields = {f.name for f in dataclasses.fields(RECORD_CLASSES[record])}
    assert set(schema["properties"]) == fields
    assert set(schema["required"]) == fields - {"extra"}  # to_dict drops an empty extra
    assert schema["additionalProperties"] is False


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(("name", "example"), example_cases(list(SCHEMA_FILES)))
def test_examples_validate(name: str, example: dict[str, Any]) -> None:
    validator(name).validate(example)
    plain_validator(name).validate(example)


@pytest.mark.parametrize(("name", "example"), example_cases(INPUT_FILES))
def test_input_examples_decode_and_reencode(name: str, example: dict[str, Any]) -> None:
    event = event_from_dict(example)
    assert SCHEMA_FOR_EVENT_TYPE[event.type] == name
    wire = event_to_dict(event)
    validator(name).validate(wire)
    assert event_from_dict(wire) == event
    assert events.decode_event(dumps(example)) == event


def _record_from_example(record: str, example: dict[str, Any]) -> Any:
    values = dict(example)
    if "reasons" in values:
        values["reasons"] = tuple(Reason(**r) for r in values["reasons"])
    return RECORD_CLASSES[record](**values)


@pytest.mark.parametrize("record", sorted(SCHEMA_FOR_RECORD))
def test_output_examples_are_what_to_dict_writes(record: str) -> None:
    for example in load_schema(SCHEMA_FOR_RECORD[record])["examples"]:
        built = _record_from_example(record, example)
        assert records.to_dict(built) == example
        assert loads(records.encode(built)) == example


# --------------------------------------------------------------------------- invalid examples


def _mentions(errors: list[ValidationError], field: str) -> bool:
    root = field.split("[", 1)[0]
    for error in errors:
        for e in (error, *(error.context or ())):
            if (e.absolute_path and e.absolute_path[0] == root) or repr(root) in e.message:
                return True
    return False


@pytest.mark.parametrize(("name", "value"), invalid_cases(INPUT_FILES))
def test_invalid_input_examples_are_refused_by_schema_and_codec(name: str, value: Any) -> None:
    errors = list(validator(name).iter_errors(value))
    assert errors, "the schema accepts it"
    assert not plain_validator(name).is_valid(value)
    with pytest.raises(DecodeError) as caught:
        event_from_dict(copy.deepcopy(value))
    with pytest.raises(DecodeError):
        events.decode_event(dumps(value))
    # both refuse it for the same field (the codec names it; the schema points at it)
    assert caught.value.field is not None
    assert _mentions(errors, caught.value.field), (caught.value, [e.message for e in errors])


@pytest.mark.parametrize(("name", "value"), invalid_cases(OUTPUT_FILES))
def test_invalid_output_examples_are_refused_by_schema(name: str, value: Any) -> None:
    assert not validator(name).is_valid(value)
    assert not plain_validator(name).is_valid(value)


# --------------------------------------------------------------------------- codec output


def test_records_to_dict_validates() -> None:
    why = (Reason("late_share", "4 of the last 6 invoices paid late", 0.62),
           Reason("avg_days_late", "12 days late on average", -0.1))
    score = ScoreRecord(
        customer_id="c-1", scored_at="2025-02-14T00:00:00Z", event_id="time:2025-02-14T00:00:00Z",
        p_late=0.5, band="medium", priority="12.5000", open_amount="25.00",
        overdue_amount="0.00", currency="EUR", open_invoices=2, low_confidence=False,
        treatment="friendly_reminder", model_version="m1", labels_seen=10, reasons=why,
    )
    cold = dataclasses.replace(score, currency=None, open_invoices=0, reasons=(),
                               low_confidence=True, p_late=0.0, band="low", treatment="none")
    alert = AlertRecord(
        alert_id="a1b2", kind="risk_spike", customer_id="c-1",
        raised_at="2025-02-14T00:00:00.000001Z", band="critical", p_late=1.0,
        previous_p_late=0.2, priority="25.00", treatment="credit_hold", message="spike",
        reasons=why,
    )
    overdue = dataclasses.replace(alert, kind="high_risk_overdue", invoice_id="inv-9")
    raw = b'{"type": "invoice.issued", "amount": -1}'
    dead = records.dead_letter(raw, DecodeError("must be positive", field="amount"),
                               topic="ar.invoices", partition=0, offset=12,
                               failed_at="2025-02-14T00:00:00Z")
    binary = records.dead_letter(b"\xff\xfe{", DecodeError("not valid JSON"), topic="file.jsonl",
                                 partition=None, offset=None, failed_at="2025-02-14T00:00:00Z")
    huge = records.dead_letter(b'"' + b"x" * 20_000 + b'"', DecodeError("no object"),
                               topic="ar.payments", partition=1, offset=0, stage="apply",
                               customer_id="c 1 (raw)", event_id="e1",
                               failed_at="2025-02-14T00:00:00Z")
    with_extra = dataclasses.replace(dead, extra={"customer_currency": "EUR"})
    assert binary.original_text is None and huge.original_text is None
    assert dead.original_text == raw.decode()
    cases: list[tuple[str, ScoreRecord | AlertRecord | DeadLetter]] = [
        ("score", score), ("score", cold), ("alert", alert), ("alert", overdue),
        ("deadletter", dead), ("deadletter", binary), ("deadletter", huge),
        ("deadletter", with_extra),
    ]
    for name, record in cases:
        validator(name).validate(records.to_dict(record))
        validator(name).validate(loads(records.encode(record)))
    assert "extra" not in records.to_dict(dead)
    assert records.to_dict(with_extra)["extra"] == {"customer_currency": "EUR"}


def test_schema_catches_bad_core_output() -> None:
    """What the schema is for on the output side: a core bug shows up as a violation."""
    good = load_schema("score")["examples"][0]
    nan = _record_from_example("ScoreRecord", {**good, "p_late": float("nan")})
    assert loads(records.encode(nan))["p_late"] is None  # orjson writes NaN as null
    assert not validator("score").is_valid(loads(records.encode(nan)))
    negative = _record_from_example("ScoreRecord", {**good, "open_amount": "-1.00"})
    assert not validator("score").is_valid(records.to_dict(negative))


# --------------------------------------------------------------------------- differential


_TIMES = [
    "2025-01-16T00:00:00Z", "2025-01-15T09:30:00", "2025-03-15T00:00:00+05:30",
    "2025-03-15T00:00:00.123Z", "2025-03-15T00:00:00.1234567Z", "2025-03-15t00:00:00z",
    "2025-02-30T00:00:00Z", "2024-02-29T12:00:00Z", "2025-02-29T12:00:00Z",
    "2025-03-15T24:00:00Z", "2025-03-15T23:59:60Z", "2025-03-15 00:00:00Z", "1970-01-01T00:00:00Z",
    "2200-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
    "2025-03-15T00:00Z", "20250315T000000Z", "2025-03-15T00:00:00+0530", "2025-03-15T00:00:00+05",
    "2025-03-15T00:00:00-00:00", "2025-03-15T00:00:00+23:59", "2025-03-15T00:00:00+24:00",
    "2025-03-15T00:00:00." + "1" * 21 + "Z", "2025-03-15T00:00:00.Z", "2025-03-15T00:00:00,5Z",
    "2025-03-15", "\u0662025-03-15T00:00:00Z", "2025-03-15T00:00:00Z\n",
]
_MONEY = [
    0, 1, -1, 0.5, 12.1, 0.0001, 1e12, 1000000000000.5, 1e13, -0.0, 1.0, 10**20,
    "0", "0.0", "12.5", "12.50000", "12.34567", "0.0001", "0.00001", "1e3", "1E+3", "+5",
    " 5", "5 ", "1_000", "1,000.00", "\u0663", "\uff15", "NaN", "Infinity", "-Infinity", "sNaN",
    ".5", "5.", "-5", "1000000000000", "1000000000000.0000", "1000000000000.0001",
    "1000000000001", "0001000000000000", "999999999999.9999", "0000.5", "00", "0.00000000001",
]
_IDS = [
    "c1", "", " ", "c 1", "c1\n", "\nc1", "c\t1", "cust\u00e9", "\U0001f600", "\u00a0c1", "c\x7f1",
    "a" * 128, "a" * 129, "~!@#$%^&*()", "\u0441ust",
]
_OTHER = [
    None, True, False, 2, 1.5, "x", "USD", "usd", "US", "USDX", "USD\n", "EUR",
    "credit_note", "write_off", "refund", *EVENT_TYPES, "invoice.paid",
    [], ["i1"], ["i1", "i1"], [1], ["i 1"], [None], ["i"] * 100, ["i"] * 101,
    {}, {"a": 1}, {str(i): i for i in range(32)}, {str(i): i for i in range(33)},
    "N" * 64, "N" * 65, "r" * 500, "r" * 501,
]
POOL: list[Any] = [*_TIMES, *_MONEY, *_IDS, *_OTHER]
DELETE = object()


def _agree(name: str, value: dict[str, Any]) -> str | None:
    """None when schema and codec agree on ``value``, else a description of the mismatch."""
    schema_ok = validator(name).is_valid(value)
    try:
        event_from_dict(value)
    except DecodeError as exc:
        if exc.field == "due_at" and "before issued_at" in exc.reason:
            return None  # the one cross-field rule JSON Schema cannot express
        if "more than 4 decimal places" in exc.reason and isinstance(
                value.get(exc.field or ""), float):
            return None  # a JSON number's decimals: documented in the schema as codec-only
        codec_ok, why = False, str(exc)
    else:
        codec_ok, why = True, "accepted"
    if schema_ok == codec_ok:
        return None
    return f"schema {'accepts' if schema_ok else 'refuses'}, codec: {why}"


def _mutations(name: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    schema = load_schema(name)
    keys = [*schema["properties"], "x_producer_field"]
    for base in schema["examples"]:
        for key in keys:
            for value in (DELETE, *POOL):
                mutated = copy.deepcopy(base)
                if value is DELETE:
                    mutated.pop(key, None)
                else:
                    mutated[key] = copy.deepcopy(value)
                yield key, value, mutated


@pytest.mark.parametrize("name", INPUT_FILES)
def test_schema_and_codec_agree_on_every_single_field_change(name: str) -> None:
    mismatches = []
    for key, value, mutated in _mutations(name):
        problem = _agree(name, mutated)
        if problem:
            shown = "<deleted>" if value is DELETE else repr(value)[:60]
            mismatches.append(f"{key}={shown}: {problem}")
    assert not mismatches, "\n".join(mismatches[:40])


_json_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
              | st.sampled_from(POOL))
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_schema_and_codec_agree_on_random_field_values(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(INPUT_FILES))
    schema = load_schema(name)
    value = copy.deepcopy(data.draw(st.sampled_from(schema["examples"])))
    keys = data.draw(st.lists(st.sampled_from(sorted(schema["properties"])), min_size=1,
                              max_size=3, unique=True))
    for key in keys:
        value[key] = data.draw(_json, label=key)
    assert _agree(name, value) is None
