"""Ledger export -> events: column mapping, date formats, bad rows, time order, partial payments."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from models.config import ScoringConfig
from models.model import OnlineModel
from models.tools.backtest import BacktestRun
from models.tools.ledger import Columns, LedgerOptions, LedgerResult, csv_rows, ledger_events
from schemas.events import InvoiceIssued, PaymentReceived, decode_event, encode_event
from streams.cli import main

EXPORTED = datetime(2024, 12, 31, tzinfo=UTC)
ODD = Columns(customer="Debtor No.", invoice="Doc #", issued="Doc Date", due="Net Due",
              amount="Amount (gross)", settled="Cleared On")


def convert(text: str, columns: Columns = ODD, delimiter: str = ",",
            **options: object) -> LedgerResult:
    _header, rows = csv_rows(io.StringIO(text), delimiter)
    opts = LedgerOptions(EXPORTED, columns, **{"currency": "EUR", **options})  # type: ignore[arg-type]
    return ledger_events(rows, opts)


def kinds(result: LedgerResult) -> list[tuple[str, str, str]]:
    return [(e.type, e.customer_id, e.at.isoformat()) for e in result.events]


def test_odd_column_names_and_unmapped_columns_ignored() -> None:
    text = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On,Days Late,Status\n"
            "D-1,A/1,2024-01-10,2024-02-09,\"1,250.00\",2024-02-20,11,late\n")
    result = convert(text)
    assert not result.bad
    issued, paid = result.events
    assert isinstance(issued, InvoiceIssued) and isinstance(paid, PaymentReceived)
    assert (issued.customer_id, issued.invoice_id, issued.amount) == ("D-1", "A/1",
                                                                      Decimal("1250.00"))
    assert paid.invoice_ids == ("A/1",) and paid.amount == Decimal("1250.00")
    # the post-outcome columns ("Days Late", "Status") leave no trace in any event
    for event in result.events:
        assert "late" not in encode_event(event).decode().lower()


def test_two_date_formats() -> None:
    iso = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"
           "D1,A1,2024-01-10,2024-02-09T12:00:00,100,2024-02-20T08:30:00+02:00\n")
    dmy = ("Debtor No.;Doc #;Doc Date;Net Due;Amount (gross);Cleared On\n"
           "D1;A1;10.01.2024;09.02.2024;100;20.02.2024\n")
    a = convert(iso)
    b = convert(dmy, delimiter=";", date_format="%d.%m.%Y")
    assert not a.bad and not b.bad
    assert kinds(a) == [("invoice.issued", "D1", "2024-01-10T00:00:00+00:00"),
                        ("payment.received", "D1", "2024-02-20T06:30:00+00:00")]
    assert kinds(b) == [("invoice.issued", "D1", "2024-01-10T00:00:00+00:00"),
                        ("payment.received", "D1", "2024-02-20T00:00:00+00:00")]
    assert isinstance(a.events[0], InvoiceIssued)
    assert a.events[0].due_at == datetime(2024, 2, 9, 12, tzinfo=UTC)


def test_bad_rows_are_reported_by_line_and_skipped() -> None:
    text = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"   # 1
            "D1,A1,2024-01-10,2024-02-09,100,2024-02-01\n"                  # 2 fine
            "D1,A2,2024-01-10,2024-02-09,100,2024-01-05\n"                  # 3 settled < issued
            "D1,A3,2024-01-10,2024-02-09,100,2025-03-01\n"                  # 4 after export
            "D1,A4,2024-03-10,2024-02-09,100,\n"                            # 5 due < issued
            "D1,A5,2024-01-10,2024-02-09,-5,\n"                             # 6 bad amount
            "D1,A6,10/01/2024,2024-02-09,100,\n"                            # 7 bad date
            ",A7,2024-01-10,2024-02-09,100,\n"                              # 8 no customer
            "D1,A8,2024-01-10\n"                                            # 9 short row
            "D1,A 9,2024-01-10,2024-02-09,100,\n"                           # 10 id with space
            "\n"                                                            # 11 blank: ignored
            "D2,B1,2024-01-10,2024-02-09,100,\n")                           # 12 fine
    result = convert(text)
    reasons = {b.line: b.reason for b in result.bad}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "before the issue date" in reasons[3]
    assert "after the export time" in reasons[4]
    assert "due date" in reasons[5] and "before the issue date" in reasons[5]
    assert "not a positive decimal amount" in reasons[6]
    assert "'10/01/2024' is not an ISO date" in reasons[7]
    assert "customer id" in reasons[8]
    assert "has 3 fields" in reasons[9]
    assert "invoice_id" in reasons[10]
    assert (result.rows, result.invoices, result.payments) == (10, 2, 1)  # blank not a row
    assert {e.invoice_id for e in result.events if isinstance(e, InvoiceIssued)} == {"A1", "B1"}


def test_events_come_out_in_time_order() -> None:
    text = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"
            "D2,B1,2024-03-01,2024-03-31,100,2024-03-05\n"
            "D1,A1,2024-01-10,2024-02-09,100,2024-03-01\n"
            "D1,A2,2024-02-01,2024-03-02,100,\n")
    result = convert(text)
    times = [e.at for e in result.events]
    assert times == sorted(times)
    # at an equal instant the invoice is issued before anything is paid
    at_once = [e.type for e in result.events if e.at == datetime(2024, 3, 1, tzinfo=UTC)]
    assert at_once == ["invoice.issued", "payment.received"]
    same = convert("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"
                   "D1,A1,2024-01-10,2024-02-09,100,2024-01-10\n")
    assert [e.type for e in same.events] == ["invoice.issued", "payment.received"]


def test_partial_payments_one_row_per_payment() -> None:
    cols = Columns(customer="cust", invoice="inv", issued="issued", due="due", amount="amt",
                   settled="paid_on", settled_amount="paid_amt")
    text = ("cust,inv,issued,due,amt,paid_on,paid_amt\n"
            "C1,I1,2024-01-01,2024-01-31,300,2024-01-20,100\n"
            "C1,I1,2024-01-01,2024-01-31,300,2024-02-20,\n"        # the rest: 200
            "C1,I2,2024-01-05,2024-02-04,500,2024-01-25,200\n"     # partial, still open
            "C1,I2,2024-01-05,2024-02-04,500,,\n"                  # no payment on this row
            "C1,I3,2024-01-05,2024-02-04,100,2024-01-25,80\n"
            "C1,I3,2024-01-05,2024-02-04,100,2024-01-26,30\n"      # exceeds the invoice
            "C1,I4,2024-01-05,2024-02-04,100,2024-01-25,20\n"
            "C1,I4,2024-01-06,2024-02-04,100,2024-01-26,20\n")     # invoice fields disagree
    result = convert(text, cols)
    payments = [(e.invoice_ids, e.amount) for e in result.events if isinstance(e, PaymentReceived)]
    assert payments == [(("I1",), Decimal("100")), (("I2",), Decimal("200")),
                        (("I1",), Decimal("200"))]
    reasons = {b.line: b.reason for b in result.bad}
    assert sorted(reasons) == [6, 7, 8, 9]
    assert "exceed" in reasons[6] and "exceed" in reasons[7]
    assert "issued differs from line 8" in reasons[9]
    assert "skipped with invoice I4" in reasons[8]


def test_duplicate_invoice_without_settled_amount_column_is_bad() -> None:
    text = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"
            "D1,A1,2024-01-10,2024-02-09,100,2024-02-01\n"
            "D1,A1,2024-01-10,2024-02-09,100,2024-02-01\n")
    result = convert(text)
    assert not result.events
    assert [b.line for b in result.bad] == [2, 3]
    assert "already on line 2" in result.bad[1].reason


def test_currency_column_and_customer_currency_mismatch() -> None:
    cols = Columns(customer="c", invoice="i", issued="d", due="n", amount="a", settled="s",
                   currency="ccy")
    text = ("c,i,d,n,a,s,ccy\n"
            "C1,I1,2024-01-01,2024-01-31,10,,usd\n"
            "C1,I2,2024-01-02,2024-02-01,10,,EUR\n")
    result = convert(text, cols, currency=None)
    assert [e.currency for e in result.events if isinstance(e, InvoiceIssued)] == ["USD"]
    assert result.bad[0].line == 3 and "differs from the customer's USD" in result.bad[0].reason


def test_ledger_events_run_through_the_engine_with_the_right_labels() -> None:
    text = ("Debtor No.,Doc #,Doc Date,Net Due,Amount (gross),Cleared On\n"
            "D1,ON,2024-01-01,2024-01-31,100,2024-02-02\n"     # 2 days after due: on time
            "D1,LATE,2024-01-02,2024-02-01,100,2024-02-20\n"   # 19 days after due: late
            "D1,OPEN,2024-01-03,2024-02-02,100,\n"             # never paid: late at due+6d
            "D2,LAST,2024-03-01,2024-03-31,100,\n")
    run = BacktestRun(ScoringConfig(), OnlineModel())
    for event in convert(text).events:
        run.submit(decode_event(encode_event(event)))
    labels = {r.invoice_id: r.y for r in run.finish().records}
    assert labels == {"ON": 0, "LATE": 1, "OPEN": 1, "LAST": None}


def test_cli_reports_bad_rows_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    ledger = tmp_path / "export.csv"
    ledger.write_text("Kunde;Beleg;Datum;Faellig;Betrag;Ausgeglichen;Mahnstufe\n"
                      "K1;R1;01.02.2024;02.03.2024;1.234,50;05.03.2024;2\n"
                      "K1;R2;01.02.2024;02.03.2024;100,00;31.02.2024;0\n"
                      "K2;R3;03.02.2024;04.03.2024;99;;1\n", encoding="utf-8")
    out = tmp_path / "events.jsonl"
    code = main(["import-ledger", str(ledger), "-o", str(out), "--customer-col", "Kunde",
                 "--invoice-col", "Beleg", "--issued-col", "Datum", "--due-col", "Faellig",
                 "--amount-col", "Betrag", "--settled-col", "Ausgeglichen", "--currency", "EUR",
                 "--date-format", "%d.%m.%Y", "--delimiter", ";", "--decimal-comma",
                 "--exported-at", "2024-06-30"])
    err = capsys.readouterr().err
    assert code == 0
    assert "line 3: settled date (Ausgeglichen) '31.02.2024' is not %d.%m.%Y" in err
    assert "3 rows -> 2 invoices, 1 payments, 3 events" in err and "1 bad rows skipped" in err
    events = [decode_event(line) for line in out.read_bytes().splitlines()]
    assert [e.type for e in events] == ["invoice.issued", "invoice.issued", "payment.received"]
    assert events[0].amount == Decimal("1234.50")  # type: ignore[union-attr]


def test_cli_refuses_unknown_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "export.csv"
    ledger.write_text("a,b\n1,2\n", encoding="utf-8")
    code = main(["import-ledger", str(ledger), "-o", str(tmp_path / "e.jsonl"),
                 "--currency", "EUR"])
    assert code == 2
    assert "column(s) not in the header: customer_id" in capsys.readouterr().err
