"""A ledger export (CSV rows, one per invoice or one per payment on an invoice) -> events.

Teams backtest and warm-start arscore on their own history, which lives in ERP
exports, not in Kafka. This module turns such rows into the same ``invoice.issued``
and ``payment.received`` events the live topics carry, and nothing more:

- only the mapped columns are read, so a column like ``status`` or ``days_late``
  (known only after the prediction time) cannot leak into features;
- nothing is invented: no due date from terms, no payment date from a status, no id
  rewritten. A row that cannot be taken as it is becomes a :class:`BadRow` with its
  line number and the reason, and is skipped;
- a settlement after the export time (``exported_at``) or before the invoice was
  issued is a bad row: it cannot be a real observation;
- when one row of an invoice is bad, the invoice's other rows are skipped too (and
  reported), since a history with a payment missing would teach a wrong label.

With a settled-amount column several rows may describe one invoice (one per
payment, partial payments allowed); the invoice fields must agree across them.
Without it, an invoice appears once and a settled date means fully paid.

Events come out in time order (issue before payment at equal times), with ids
derived from the content so that importing the same file twice gives the same ids.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from schemas.codec import SCHEMA_VERSION, DecodeError
from schemas.events import Event, InvoiceIssued, event_from_dict
from schemas.fields import format_money, format_time

_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Columns:
    """Which CSV column holds each field (header names, matched exactly)."""

    customer: str = "customer_id"
    invoice: str = "invoice_id"
    issued: str = "issued_at"
    due: str = "due_at"
    amount: str = "amount"
    settled: str = "settled_at"
    settled_amount: str | None = None
    """Optional: amount paid on that date (partial payments; one row per payment)."""
    currency: str | None = None
    """Optional: a currency column; otherwise :attr:`LedgerOptions.currency` applies."""

    def required(self) -> list[str]:
        names = [self.customer, self.invoice, self.issued, self.due, self.amount, self.settled]
        names += [n for n in (self.settled_amount, self.currency) if n is not None]
        return names


@dataclass(frozen=True, slots=True)
class LedgerOptions:
    """How to read the rows: column mapping, currency, date format and the export time."""

    exported_at: datetime
    """When the export was taken: nothing in it can have happened later."""
    columns: Columns = field(default_factory=Columns)
    currency: str | None = None
    """One currency for the whole file, when there is no currency column."""
    date_format: str | None = None
    """A ``strptime`` format; None accepts ISO 8601 dates and date-times."""
    decimal_comma: bool = False
    """Amounts written ``1.234,50`` (comma decimals, dot thousands), as many EU exports are."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass(slots=True)
class LedgerResult:
    """The events (in time order), the rows refused, and what was read."""

    events: list[Event]
    bad: list[BadRow]
    rows: int = 0
    invoices: int = 0
    payments: int = 0


class _Bad(ValueError):
    """A row-level reason, turned into a :class:`BadRow` by the caller."""


@dataclass(slots=True)
class _Invoice:
    line: int
    customer: str
    invoice: str
    issued: datetime
    due: datetime
    amount: Decimal
    currency: str
    payments: list[tuple[int, datetime, Decimal | None]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


# --- reading ----------------------------------------------------------------------------


def csv_rows(lines: Iterable[str], delimiter: str = ",",
             ) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, row)`` pairs; the header is line 1.

    A quoted field may span lines: the row's number is the line it starts on.

    >>> header, rows = csv_rows(["a;b", "1;2"], delimiter=";")
    >>> header, list(rows)
    (['a', 'b'], [(2, {'a': '1', 'b': '2'})])
    """
    reader = csv.reader(iter(lines), delimiter=delimiter)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return [], iter(())

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num + 1
        for values in reader:
            if any(v.strip() for v in values):
                if len(values) != len(header):
                    yield start, {"\0": f"has {len(values)} fields, the header has {len(header)}"}
                else:
                    yield start, dict(zip(header, values, strict=True))
            start = reader.line_num + 1

    return header, rows()


def missing_columns(header: Sequence[str], columns: Columns) -> list[str]:
    """Mapped columns the header lacks (the import cannot start without them)."""
    return [name for name in columns.required() if name not in header]


# --- field parsing ----------------------------------------------------------------------


def parse_time(text: str, date_format: str | None) -> datetime:
    """A date or date-time in UTC; values without a zone are taken as UTC.

    >>> parse_time("2024-03-01", None).isoformat()
    '2024-03-01T00:00:00+00:00'
    >>> parse_time("01/03/2024", "%d/%m/%Y").isoformat()
    '2024-03-01T00:00:00+00:00'
    """
    value = text.strip()
    if not value:
        raise _Bad("is empty")
    try:
        if date_format is None:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        else:
            parsed = datetime.strptime(value, date_format)
    except ValueError:
        expected = date_format or "an ISO date or date-time"
        raise _Bad(f"{value[:40]!r} is not {expected}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_amount(text: str, decimal_comma: bool = False) -> Decimal:
    """A positive amount: plain (``1234.5``) or with thousands commas (``1,234.50``).

    With ``decimal_comma`` the roles of ``.`` and ``,`` are swapped (``1.234,50``).

    >>> parse_amount(" 1,234.50 "), parse_amount("1.234,5", decimal_comma=True)
    (Decimal('1234.50'), Decimal('1234.5'))
    """
    value = text.strip()
    if decimal_comma:
        value = value.translate(str.maketrans(".,", ",."))
    if not (_PLAIN.fullmatch(value) or _GROUPED.fullmatch(value)):
        raise _Bad(f"{value[:40]!r} is not a positive decimal amount")
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the patterns above rule this out
        raise _Bad(f"{value[:40]!r} is not a decimal amount") from None
    if amount <= 0:
        raise _Bad("must be positive")
    return amount


def _cell(row: Mapping[str, str], name: str, what: str) -> str:
    value = row.get(name, "").strip()
    if not value:
        raise _Bad(f"{what} ({name}) is empty")
    return value


def _time(row: Mapping[str, str], name: str, what: str, fmt: str | None) -> datetime:
    try:
        return parse_time(row.get(name, ""), fmt)
    except _Bad as exc:
        raise _Bad(f"{what} ({name}) {exc}") from None


def _amount(row: Mapping[str, str], name: str, what: str, options: LedgerOptions) -> Decimal:
    try:
        return parse_amount(row.get(name, ""), options.decimal_comma)
    except _Bad as exc:
        raise _Bad(f"{what} ({name}) {exc}") from None


def _currency(row: Mapping[str, str], options: LedgerOptions) -> str:
    col = options.columns.currency
    if col is None:
        if options.currency is None:
            raise _Bad("no currency: map a currency column or give one currency")
        return options.currency.upper()
    return _cell(row, col, "currency").upper()


# --- rows -> invoices -----------------------------------------------------------------


def _read_invoice(line: int, row: Mapping[str, str], options: LedgerOptions) -> _Invoice:
    """The invoice fields of one row, checked against what cannot be true in an export."""
    if "\0" in row:
        raise _Bad(row["\0"])
    c = options.columns
    fmt = options.date_format
    issued = _time(row, c.issued, "issue date", fmt)
    due = _time(row, c.due, "due date", fmt)
    if due < issued:
        raise _Bad(f"due date {format_time(due)} is before the issue date {format_time(issued)}")
    if issued > options.exported_at:
        raise _Bad(f"issue date {format_time(issued)} is after the export time")
    return _Invoice(line, _cell(row, c.customer, "customer id"),
                    _cell(row, c.invoice, "invoice id"), issued, due,
                    _amount(row, c.amount, "amount", options), _currency(row, options))


def _read_payment(row: Mapping[str, str], inv: _Invoice, options: LedgerOptions,
                  ) -> tuple[datetime, Decimal | None] | None:
    """The row's settlement (date, amount or None for "the rest"), if it has one."""
    c = options.columns
    settled_text = row.get(c.settled, "").strip()
    amount_text = row.get(c.settled_amount, "").strip() if c.settled_amount else ""
    if not settled_text:
        if amount_text:
            raise _Bad(f"settled amount ({c.settled_amount}) without a settled date")
        return None
    settled = _time(row, c.settled, "settled date", options.date_format)
    if settled < inv.issued:
        raise _Bad(f"settled date {format_time(settled)} is before the issue date "
                   f"{format_time(inv.issued)}")
    if settled > options.exported_at:
        raise _Bad(f"settled date {format_time(settled)} is after the export time "
                   f"{format_time(options.exported_at)}")
    if not amount_text or c.settled_amount is None:
        return settled, None
    return settled, _amount(row, c.settled_amount, "settled amount", options)


def _same_invoice(first: _Invoice, other: _Invoice) -> None:
    for name in ("issued", "due", "amount", "currency"):
        if getattr(first, name) != getattr(other, name):
            raise _Bad(f"{name} differs from line {first.line} for invoice {first.invoice}")


def _group(rows: Iterable[tuple[int, Mapping[str, str]]], options: LedgerOptions,
           result: LedgerResult) -> tuple[dict[tuple[str, str], _Invoice], set[tuple[str, str]]]:
    """Rows -> invoices keyed by (customer, invoice); also the keys spoiled by a bad row."""
    invoices: dict[tuple[str, str], _Invoice] = {}
    spoiled: set[tuple[str, str]] = set()
    currencies: dict[str, tuple[str, int]] = {}
    multi = options.columns.settled_amount is not None
    c = options.columns
    for line, row in rows:
        result.rows += 1
        key = (row.get(c.customer, "").strip(), row.get(c.invoice, "").strip())
        try:
            inv = _read_invoice(line, row, options)
            known = invoices.get(key)
            if known is None:
                seen = currencies.setdefault(inv.customer, (inv.currency, line))
                if seen[0] != inv.currency:
                    raise _Bad(f"currency {inv.currency} differs from the customer's "
                               f"{seen[0]} (line {seen[1]})")
                invoices[key] = known = inv
            elif not multi:
                raise _Bad(f"invoice {inv.invoice} already on line {known.line} "
                           "(map --settled-amount-col for one row per payment)")
            else:
                _same_invoice(known, inv)
            payment = _read_payment(row, known, options)
            known.lines.append(line)
            if payment is not None:
                known.payments.append((line, *payment))
        except _Bad as exc:
            result.bad.append(BadRow(line, str(exc)))
            spoiled.add(key)
    return invoices, spoiled


def _check_totals(inv: _Invoice) -> None:
    """Payments must not exceed the invoice, and "the rest" only once, last."""
    paid = Decimal(0)
    for i, (line, _, amount) in enumerate(sorted(inv.payments, key=lambda p: (p[1], p[0]))):
        if amount is None and i != len(inv.payments) - 1:
            raise _Bad(f"line {line} settles invoice {inv.invoice} in full but later "
                       "payments follow")
        paid += amount if amount is not None else inv.amount - paid
        if paid > inv.amount:
            raise _Bad(f"settled amounts of invoice {inv.invoice} exceed its amount "
                       f"{format_money(inv.amount)}")


# --- invoices -> events ---------------------------------------------------------------


def _event_id(kind: str, *parts: object) -> str:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()
    return f"ledger-{kind}-{digest}"


def _events(inv: _Invoice) -> list[Event]:
    """The invoice's issue and payment events, validated against the contract."""
    issued = event_from_dict({
        "schema_version": SCHEMA_VERSION, "type": "invoice.issued",
        "event_id": _event_id("inv", inv.customer, inv.invoice),
        "customer_id": inv.customer, "invoice_id": inv.invoice,
        "amount": format_money(inv.amount), "currency": inv.currency,
        "issued_at": format_time(inv.issued), "due_at": format_time(inv.due),
    })
    out: list[Event] = [issued]
    paid = Decimal(0)
    for line, at, amount in sorted(inv.payments, key=lambda p: (p[1], p[0])):
        units = amount if amount is not None else inv.amount - paid
        paid += units
        if units <= 0:
            continue  # "the rest" of an invoice already settled by earlier rows
        out.append(event_from_dict({
            "schema_version": SCHEMA_VERSION, "type": "payment.received",
            "event_id": _event_id("pay", inv.customer, inv.invoice, line),
            "customer_id": inv.customer, "invoice_id": inv.invoice,
            "amount": format_money(units), "currency": inv.currency,
            "received_at": format_time(at),
        }))
    return out


def _order(event: Event) -> tuple[datetime, int, str]:
    return event.at, 0 if isinstance(event, InvoiceIssued) else 1, event.event_id


def ledger_events(rows: Iterable[tuple[int, Mapping[str, str]]], options: LedgerOptions,
                  ) -> LedgerResult:
    """Turn ledger rows into events in time order; refused rows are reported, not raised.

    >>> from datetime import datetime, UTC
    >>> opts = LedgerOptions(datetime(2024, 6, 1, tzinfo=UTC), currency="EUR")
    >>> rows = [(2, {"customer_id": "c1", "invoice_id": "i1", "issued_at": "2024-01-01",
    ...              "due_at": "2024-01-31", "amount": "100", "settled_at": "2024-02-03"})]
    >>> [(e.type, e.at.date().isoformat()) for e in ledger_events(rows, opts).events]
    [('invoice.issued', '2024-01-01'), ('payment.received', '2024-02-03')]
    """
    result = LedgerResult([], [])
    invoices, spoiled = _group(rows, options, result)
    for key, inv in invoices.items():
        if key in spoiled:
            for line in inv.lines:
                result.bad.append(BadRow(line, f"skipped with invoice {inv.invoice} "
                                               "(another of its rows is bad)"))
            continue
        try:
            _check_totals(inv)
            events = _events(inv)
        except (_Bad, DecodeError) as exc:
            result.bad.extend(BadRow(line, str(exc)) for line in inv.lines)
            continue
        result.events.extend(events)
        result.invoices += 1
        result.payments += len(events) - 1
    result.events.sort(key=_order)
    result.bad.sort(key=lambda b: b.line)
    return result
