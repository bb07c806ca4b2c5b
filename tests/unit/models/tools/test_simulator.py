"""The synthetic event-stream simulator: determinism, contract, delivery noise, truth."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from models.tools.simulator import (
    PROFILES,
    SimulationConfig,
    SimulationStats,
    ground_truth,
    simulate,
)
from schemas.codec import dumps
from schemas.events import (
    InvoiceAdjusted,
    InvoiceDisputed,
    InvoiceIssued,
    PaymentReceived,
    event_from_dict,
    event_to_dict,
)
from streams.commands import simulate as simulate_cmd

DAY = 86_400
SMALL = SimulationConfig(customers=50, days=120, seed=11)
# more of every rare feature, so the consistency checks exercise them all
RICH = SimulationConfig(customers=200, days=365, seed=3, dispute_rate=0.06,
                        credit_note_rate=0.05, overpayment_rate=0.05,
                        unnamed_payment_rate=0.25, partial_rate=0.4)
NOISY = SimulationConfig(customers=50, days=120, seed=5, disorder_rate=0.15,
                         duplicate_rate=0.05, max_disorder_hours=12.0)


@cache
def run_sim(cfg: SimulationConfig) -> tuple[tuple[dict[str, Any], ...], SimulationStats]:
    stats = SimulationStats()
    return tuple(simulate(cfg, stats)), stats


def events_of(cfg: SimulationConfig) -> tuple[dict[str, Any], ...]:
    return run_sim(cfg)[0]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def event_time(e: dict[str, Any]) -> float:
    return event_from_dict(e).at.timestamp()


# --- a reference ledger: the documented cash-application rules, nothing more -------------


@dataclass
class Inv:
    customer: str
    issued: float
    due: float
    amount: Decimal
    open: Decimal
    disputed: bool = False
    settled: float | None = None
    named_paid: Decimal = Decimal(0)
    reduced: Decimal = Decimal(0)
    """Credit balance applied at issue plus credit notes: what the customer need not pay."""


@dataclass
class Ledger:
    invoices: dict[str, Inv]
    credit: dict[str, Decimal]
    paid: dict[str, Decimal]
    billed: dict[str, Decimal]
    adjusted: dict[str, Decimal]
    unknown_refs: int = 0


def replay(events: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> Ledger:
    """Apply events in the order given (duplicates skipped): named payments to the invoices
    they name, the rest to credit; unnamed payments oldest-first over undisputed open invoices;
    a credit balance is applied to the next invoice issued."""
    led = Ledger({}, defaultdict(Decimal), defaultdict(Decimal), defaultdict(Decimal),
                 defaultdict(Decimal))
    seen: set[str] = set()
    for d in events:
        if d["event_id"] in seen:
            continue
        seen.add(d["event_id"])
        e = event_from_dict(d)
        at = e.at.timestamp()
        cust = e.customer_id
        if isinstance(e, InvoiceIssued):
            inv = Inv(cust, at, e.due_at.timestamp(), e.amount, e.amount)
            led.invoices[e.invoice_id] = inv
            led.billed[cust] += e.amount
            used = min(led.credit[cust], inv.open)
            led.credit[cust] -= used
            inv.open -= used
            inv.reduced += used
            if inv.open == 0:
                inv.settled = at
        elif isinstance(e, PaymentReceived):
            led.paid[cust] += e.amount
            units = e.amount
            if e.invoice_ids:
                targets = []
                for inv_id in e.invoice_ids:
                    if inv_id not in led.invoices:
                        led.unknown_refs += 1
                        continue
                    led.invoices[inv_id].named_paid += units
                    targets.append(led.invoices[inv_id])
            else:
                targets = sorted((i for i in led.invoices.values()
                                  if i.customer == cust and i.open > 0 and not i.disputed),
                                 key=lambda i: i.issued)
            for inv in targets:
                used = min(units, inv.open)
                units -= used
                inv.open -= used
                if used and inv.open == 0:
                    inv.settled = at
            led.credit[cust] += units
        else:
            if e.invoice_id not in led.invoices:
                led.unknown_refs += 1
                continue
            inv = led.invoices[e.invoice_id]
            if isinstance(e, InvoiceAdjusted):
                led.adjusted[cust] += e.amount
                inv.reduced += e.amount
                used = min(e.amount, inv.open)
                inv.open -= used
                led.credit[cust] += e.amount - used
                if inv.open == 0:
                    inv.settled = at
            else:
                inv.disputed = isinstance(e, InvoiceDisputed)
    return led


def first_30dpd(led: Ledger, end: float) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    for inv_id, inv in led.invoices.items():
        mark = inv.due + 30 * DAY
        if mark < end and (inv.settled is None or inv.settled > mark):
            best = out.get(inv.customer)
            if best is None or mark < best[0]:
                out[inv.customer] = (mark, inv_id)
    return out


# --- determinism and the contract ---------------------------------------------------------


def jsonl(cfg: SimulationConfig) -> bytes:
    return b"".join(dumps(e) + b"\n" for e in simulate(cfg))


def test_same_seed_same_bytes_different_seed_differs() -> None:
    a, b = jsonl(SMALL), jsonl(SimulationConfig(customers=50, days=120, seed=11))
    assert a == b and len(a) > 10_000
    assert a != jsonl(SimulationConfig(customers=50, days=120, seed=12))
    assert ground_truth(SMALL) == ground_truth(SimulationConfig(customers=50, days=120, seed=11))


@pytest.mark.parametrize("cfg", [SMALL, RICH, NOISY], ids=["small", "rich", "noisy"])
def test_every_event_is_exactly_the_wire_form(cfg: SimulationConfig) -> None:
    events = events_of(cfg)
    money = re.compile(r"^\d+\.\d\d$")
    for d in events:
        assert d["schema_version"] == 1
        e = event_from_dict(d)
        assert event_to_dict(e) == d  # nothing extra, nothing missing, same text
        assert d["event_id"].isascii() and " " not in d["event_id"]
        assert re.fullmatch(r"C\d{6}", d["customer_id"])
        for key in ("issued_at", "due_at", "received_at", "adjusted_at", "disputed_at",
                    "resolved_at"):
            if key in d:
                assert d[key].endswith("Z")
        if "amount" in d:
            assert money.match(d["amount"])
    start, end = cfg.start.timestamp(), cfg.start.timestamp() + cfg.days * DAY
    assert all(start <= event_time(d) < end for d in events)
    types = Counter(d["type"] for d in events)
    assert types["invoice.issued"] > 0 and types["payment.received"] > 0


def test_ids_unique_except_duplicate_deliveries() -> None:
    events = events_of(NOISY)
    by_id: dict[str, dict[str, Any]] = {}
    for d in events:
        if d["event_id"] in by_id:
            assert by_id[d["event_id"]] == d
        by_id[d["event_id"]] = d
    invoices = [d["invoice_id"] for d in by_id.values() if d["type"] == "invoice.issued"]
    assert len(invoices) == len(set(invoices))
    payments = [d["payment_id"] for d in by_id.values() if d["type"] == "payment.received"]
    assert len(payments) == len(set(payments))
    for d in by_id.values():  # one currency per customer
        if "currency" in d:
            assert d["currency"] in ("EUR", "USD", "GBP")
    currencies = defaultdict(set)
    for d in by_id.values():
        if "currency" in d:
            currencies[d["customer_id"]].add(d["currency"])
    assert all(len(c) == 1 for c in currencies.values())


def test_bad_config_is_refused() -> None:
    for kwargs in ({"customers": 0, "days": 10}, {"customers": 1, "days": 0},
                   {"customers": 1, "days": 10, "disorder_rate": 1.5},
                   {"customers": 1, "days": 10, "start": datetime(2024, 1, 1)}):
        with pytest.raises(ValueError):
            SimulationConfig(**kwargs)


# --- delivery noise ------------------------------------------------------------------------


def test_disorder_and_duplicates_present_and_bounded() -> None:
    events, stats = run_sim(NOISY)
    unique = {d["event_id"] for d in events}
    dups = len(events) - len(unique)
    assert dups == stats.duplicates
    assert 0.02 * len(unique) < dups < 0.09 * len(unique)
    newest = float("-inf")
    late = 0
    worst = 0.0
    for d in events:
        t = event_time(d)
        if t < newest:
            late += 1
            worst = max(worst, newest - t)
        newest = max(newest, t)
    assert late == stats.out_of_order
    assert late > 0.03 * len(events)
    assert worst <= NOISY.max_disorder_hours * 3600
    # a duplicate comes after its original, at most an hour of event time later in the file
    first_pos: dict[str, int] = {}
    for i, d in enumerate(events):
        if d["event_id"] in first_pos:
            assert i > first_pos[d["event_id"]]
        else:
            first_pos[d["event_id"]] = i


def test_default_noise_is_light_and_zero_noise_is_sorted() -> None:
    _, stats = run_sim(RICH)
    assert 0 < stats.duplicates < 0.02 * stats.events
    assert 0 < stats.out_of_order < 0.05 * stats.events
    clean = list(simulate(SimulationConfig(customers=30, days=90, seed=2, disorder_rate=0.0,
                                           duplicate_rate=0.0)))
    times = [event_time(d) for d in clean]
    assert times == sorted(times)
    assert len({d["event_id"] for d in clean}) == len(clean)


# --- behaviour and ground truth ----------------------------------------------------------------


def test_truth_from_stats_equals_ground_truth() -> None:
    _, stats = run_sim(RICH)
    assert stats.truth == ground_truth(RICH)
    truth = ground_truth(RICH)
    json.dumps(truth)  # plain JSON
    assert set(truth["customers"]) == {f"C{i:06d}" for i in range(1, 201)}
    assert truth["profiles"] == {"stable": 110, "slow": 40, "erratic": 30, "deteriorating": 20}


@pytest.mark.parametrize("order", ["file", "event_time"])
def test_truth_matches_the_ledger_the_events_imply(order: str) -> None:
    events = list(events_of(RICH))
    if order == "event_time":
        events.sort(key=event_time)
    led = replay(events)
    assert led.unknown_refs == 0  # nothing refers to an invoice not yet seen, even in file order
    truth = ground_truth(RICH)
    end = ts(truth["horizon_end"])
    got = first_30dpd(led, end)
    for cid, info in truth["customers"].items():
        if info["first_30dpd_at"] is None:
            assert cid not in got
        else:
            mark, inv_id = got[cid]
            assert mark == ts(info["first_30dpd_at"])
            assert inv_id == info["first_30dpd_invoice"]
            inv = led.invoices[inv_id]
            assert inv.settled is None or inv.settled > inv.due + 30 * DAY
    open_at_end = Counter(i.customer for i in led.invoices.values() if i.settled is None)
    assert {c: n for c, n in open_at_end.items()} == {
        c: v["open_at_end"] for c, v in truth["customers"].items() if v["open_at_end"]}


def test_rich_config_exercises_every_feature() -> None:
    events = events_of(RICH)
    types = Counter(d["type"] for d in events)
    assert set(types) == {"invoice.issued", "payment.received", "invoice.adjusted",
                          "invoice.disputed", "invoice.dispute_resolved"}
    unnamed = [d for d in events if d["type"] == "payment.received" and "invoice_ids" not in d]
    assert unnamed
    per_invoice = Counter(d["invoice_ids"][0] for d in {d["event_id"]: d for d in events}.values()
                          if d.get("invoice_ids"))
    assert max(per_invoice.values()) >= 2  # instalments
    led = replay(events)
    assert any(c > 0 for c in led.credit.values())  # an overpayment left credit


def test_profiles_behave_as_intended() -> None:
    cfg = SimulationConfig(customers=200, days=365, seed=9)
    truth = ground_truth(cfg)
    led = replay(events_of(cfg))
    end = ts(truth["horizon_end"])
    late: dict[str, list[bool]] = defaultdict(list)
    for inv in led.invoices.values():
        profile = truth["customers"][inv.customer]["profile"]
        if inv.settled is not None:
            late[profile].append(inv.settled > inv.due + 5 * DAY)
        elif inv.due + 5 * DAY < end:
            late[profile].append(True)
    share = {p: sum(v) / len(v) for p, v in late.items()}
    assert share["stable"] < 0.08
    assert share["slow"] > 0.85
    assert share["stable"] < share["erratic"] < share["slow"]
    for info in truth["customers"].values():
        if info["profile"] == "deteriorating":
            assert info["deteriorates_at"] is not None
            assert ts(truth["horizon_start"]) < ts(info["deteriorates_at"]) < end
        else:
            assert info["deteriorates_at"] is None
    by_profile: dict[str, list[bool]] = defaultdict(list)
    for info in truth["customers"].values():
        by_profile[info["profile"]].append(info["first_30dpd_at"] is not None)
    rate = {p: sum(v) / len(v) for p, v in by_profile.items()}
    assert rate["deteriorating"] > 0.8
    assert rate["stable"] < 0.15 and rate["slow"] < 0.15
    for info in truth["customers"].values():  # deterioration precedes its 30 dpd
        if info["profile"] == "deteriorating" and info["first_30dpd_at"]:
            assert ts(info["first_30dpd_at"]) > ts(info["deteriorates_at"])
    assert set(rate) == set(PROFILES)


def test_money_sanity() -> None:
    led = replay(events_of(RICH))
    for cust, paid in led.paid.items():
        owed = led.billed[cust] - led.adjusted[cust]
        assert paid <= owed + led.billed[cust] * Decimal("0.05")
        assert paid - owed <= led.credit[cust]
    for inv in led.invoices.values():  # customers pay what is owed, less credit they hold
        over = inv.named_paid - (inv.amount - inv.reduced)
        assert over <= min(inv.amount * Decimal("0.05"), Decimal(50)) + Decimal("0.01")
    total_credit = sum(led.credit.values(), Decimal(0))
    assert total_credit <= sum(led.billed.values(), Decimal(0)) * Decimal("0.01")


# --- the CLI -----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arscore")
    simulate_cmd.register(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_writes_events_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev.jsonl"
    args = parser().parse_args(["simulate", "--customers", "20", "--days", "60", "--seed", "4",
                                "-o", str(out), "--start", "2023-06-01"])
    assert args.func(args) == 0
    lines = out.read_bytes().splitlines()
    cfg = SimulationConfig(customers=20, days=60, seed=4, start=datetime(2023, 6, 1, tzinfo=UTC))
    assert b"\n".join(lines) + b"\n" == jsonl(cfg)
    truth = json.loads((tmp_path / "ev.truth.json").read_text())
    assert truth == json.loads(dumps(ground_truth(cfg)))
    assert truth["horizon_start"] == "2023-06-01T00:00:00Z"
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{len(lines)} events" in err
    assert "20 customers" in err and "60 days" in err and "duplicates" in err


def test_cli_explicit_truth_and_stdout(tmp_path: Path,
                                       capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    truth = tmp_path / "t.json"
    args = parser().parse_args(["simulate", "--customers", "5", "--days", "30", "-o", "-",
                                "--ground-truth", str(truth)])
    assert simulate_cmd.run(args) == 0
    captured = capfdbinary.readouterr()
    assert captured.out == jsonl(SimulationConfig(customers=5, days=30))
    assert json.loads(truth.read_text())["config"]["customers"] == 5


@pytest.mark.parametrize("argv, fragment", [
    (["--customers", "0"], "--customers"),
    (["--days", "-3"], "--days"),
    (["--start", "yesterday"], "--start"),
    (["-o", "{missing}/x.jsonl"], "cannot write"),
])
def test_cli_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           argv: list[str], fragment: str) -> None:
    argv = [a.replace("{missing}", str(tmp_path / "no" / "such")) for a in argv]
    args = parser().parse_args(["simulate", "--customers", "3", "--days", "10", *argv])
    assert simulate_cmd.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("arscore: ") and fragment in err and "Traceback" not in err
