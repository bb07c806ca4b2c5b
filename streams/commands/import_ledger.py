"""``arscore import-ledger LEDGER.csv -o EVENTS.jsonl``: an ERP export -> arscore events.

Usage::

    arscore import-ledger ar_export.csv -o events.jsonl \\
        --customer-col "Debtor No" --invoice-col "Doc No" --issued-col "Doc Date" \\
        --due-col "Due Date" --amount-col "Amount" --settled-col "Cleared On" \\
        --currency EUR --date-format "%d.%m.%Y" --delimiter ";"

Only the mapped columns are read. Bad rows are reported on stderr with their line
number and reason and skipped; the events file (time order) is then ready for
``arscore backtest`` and ``arscore bootstrap``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.tools.ledger import (
    Columns,
    LedgerOptions,
    LedgerResult,
    csv_rows,
    ledger_events,
    missing_columns,
    parse_time,
)
from schemas.events import encode_event
from streams.cli import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("import-ledger", help="turn a ledger export (CSV) into an event file",
                       description="Read an accounts-receivable ledger export (one row per "
                                   "invoice, or one per payment with --settled-amount-col) "
                                   "and write invoice.issued / payment.received events as "
                                   "JSONL in time order.")
    p.add_argument("ledger", help="CSV file with a header row")
    p.add_argument("-o", "--output", required=True, help="events file to write (JSONL)")
    p.add_argument("--customer-col", default="customer_id", help="customer id column")
    p.add_argument("--invoice-col", default="invoice_id", help="invoice id column")
    p.add_argument("--issued-col", default="issued_at", help="issue date column")
    p.add_argument("--due-col", default="due_at", help="due date column")
    p.add_argument("--amount-col", default="amount", help="invoice amount column")
    p.add_argument("--settled-col", default="settled_at",
                   help="settlement (payment) date column; empty = still open")
    p.add_argument("--settled-amount-col", default=None,
                   help="amount paid on the settled date (partial payments: one row per "
                        "payment); without it a settled date means paid in full")
    cur = p.add_mutually_exclusive_group(required=True)
    cur.add_argument("--currency", help="one ISO 4217 currency for every row")
    cur.add_argument("--currency-col", help="currency column")
    p.add_argument("--date-format", default=None,
                   help="strptime format of every date (default: ISO dates or date-times; "
                        "values without a zone are UTC)")
    p.add_argument("--decimal-comma", action="store_true",
                   help="amounts use a decimal comma and dot thousands (1.234,50)")
    p.add_argument("--delimiter", default=",", help="field delimiter (default ','; "
                                                    "'\\t' for tabs)")
    p.add_argument("--exported-at", default=None,
                   help="when the export was taken (ISO); settlements after it are bad rows "
                        "(default: now)")
    p.add_argument("--encoding", default="utf-8-sig", help="file encoding (default utf-8)")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> LedgerOptions:
    if args.currency is not None and not (len(args.currency) == 3 and args.currency.isalpha()):
        raise CliError(f"import-ledger: --currency must be a 3-letter ISO code: {args.currency}")
    try:
        exported = (parse_time(args.exported_at, None) if args.exported_at
                    else datetime.now(UTC))
    except ValueError as exc:
        raise CliError(f"import-ledger: --exported-at {exc}") from None
    columns = Columns(customer=args.customer_col, invoice=args.invoice_col,
                      issued=args.issued_col, due=args.due_col, amount=args.amount_col,
                      settled=args.settled_col, settled_amount=args.settled_amount_col,
                      currency=args.currency_col)
    return LedgerOptions(exported, columns, args.currency, args.date_format,
                         args.decimal_comma)


def _delimiter(text: str) -> str:
    value = "\t" if text in ("\\t", "tab") else text
    if len(value) != 1:
        raise CliError(f"import-ledger: --delimiter must be one character: {text!r}")
    return value


def convert(args: argparse.Namespace) -> LedgerResult:
    """Read the CSV, check the mapping against its header, and build the events."""
    options = _options(args)
    path = Path(args.ledger)
    if not path.is_file():
        raise CliError(f"import-ledger: no such ledger file: {path}")
    with open(path, encoding=args.encoding, newline="") as fh:
        header, rows = csv_rows(fh, _delimiter(args.delimiter))
        if not header:
            raise CliError(f"import-ledger: {path} is empty (a header row is needed)")
        missing = missing_columns(header, options.columns)
        if missing:
            raise CliError(f"import-ledger: column(s) not in the header: {', '.join(missing)} "
                           f"(header: {', '.join(header)})")
        return ledger_events(rows, options)


def run(args: argparse.Namespace) -> int:
    try:
        result = convert(args)
    except UnicodeDecodeError as exc:
        raise CliError(f"import-ledger: cannot decode {args.ledger}: {exc.reason} "
                       "(try --encoding)") from None
    with open(args.output, "wb") as out:
        for event in result.events:
            out.write(encode_event(event) + b"\n")
    for bad in result.bad:
        print(f"arscore: {args.ledger}: line {bad.line}: {bad.reason}", file=sys.stderr)
    print(f"import-ledger: {result.rows:,} rows -> {result.invoices:,} invoices, "
          f"{result.payments:,} payments, {len(result.events):,} events -> {args.output}; "
          f"{len(result.bad):,} bad rows skipped", file=sys.stderr)
    return 1 if result.bad and not result.events else 0
