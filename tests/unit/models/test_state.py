"""Customer state transitions: cash application, labels, disputes, idempotency, bounds."""

from __future__ import annotations

from array import array

import pytest
from helpers import (
    adjust,
    customer_events,
    invoice,
    payment,
    processor,
    run,
    snapshot,
    ts,
    units,
)
from hypothesis import given, settings

from models import invoice as iv
from models import state as st
from models import transitions as tr
from models.config import DAY, ScoringConfig
from models.processor import DUPLICATE, OK, REJECTED

CFG = ScoringConfig()
X = array("d", [0.0])


def fresh(*invoices: tuple[str, float, float, float]) -> st.CustomerState:
    """A state with open invoices (id, amount, issued day, due day), via the state functions."""
    s = st.CustomerState("c1")
    for inv_id, amount, issued, due in invoices:
        assert tr.issue_invoice(s, inv_id, ts(issued), ts(due), units(amount), array("d", X),
                                0.3, CFG) == []
    return s


# --- cash application -------------------------------------------------------------------


def test_partial_payments_lower_the_open_amount_then_close_on_time() -> None:
    s, steps = run([invoice("c1", "i1", 100, 0, 30), payment("c1", 30, 5, "i1"),
                    payment("c1", "30.50", 10, "i1")])
    assert [step.status for step in steps] == [OK, OK, OK]
    inv = s.invoices["i1"]
    assert inv.open == units("39.50") and inv.payments == 2
    assert s.conserved()
    s, steps = run([payment("c1", "39.50", 20, "i1")], state=s)
    assert "i1" not in s.invoices
    assert s.n_paid == 1 and s.n_partial == 1
    [label] = steps[0].labels
    assert (label.invoice_id, label.y) == ("i1", 0)
    assert s.open_units == 0 and s.credit == 0 and s.conserved()


def test_one_payment_covers_several_named_invoices_in_the_order_given() -> None:
    s, _ = run([invoice("c1", "i1", 100, 0, 30), invoice("c1", "i2", 50, 1, 31),
                invoice("c1", "i3", 70, 2, 32)])
    s, steps = run([payment("c1", 120, 5, "i2", "i1")], state=s)
    assert "i2" not in s.invoices  # named first: paid in full
    assert s.invoices["i1"].open == units(30)  # then what was left
    assert s.invoices["i3"].open == units(70)  # not named: untouched
    assert [lb.invoice_id for lb in steps[0].labels] == ["i2"]
    assert s.conserved()


def test_unnamed_payment_applies_oldest_first_by_issue_time_skipping_disputed() -> None:
    s = fresh(("b", 100, 0, 30), ("a", 100, 5, 35), ("c", 100, 2, 32))
    tr.set_disputed(s, "c", True)
    labels = tr.receive_payment(s, units(150), ts(10), (), CFG)
    assert "b" not in s.invoices  # oldest by issue time, although its id sorts after "a"
    assert s.invoices["c"].open == units(100)  # disputed: skipped
    assert s.invoices["a"].open == units(50)
    assert [lb.invoice_id for lb in labels] == ["b"]
    assert s.credit == 0 and s.conserved()


def test_unnamed_payment_with_nothing_open_becomes_credit() -> None:
    s = st.CustomerState("c1")
    tr.receive_payment(s, units(40), ts(1), (), CFG)
    assert s.credit == units(40) and s.conserved()


@pytest.mark.parametrize(("paid_day", "expected_paid_day"), [(0.0, 3.0), (10.0, 10.0)])
def test_payment_before_its_invoice_is_held_then_applied_on_arrival(
        paid_day: float, expected_paid_day: float) -> None:
    """Paid time is max(payment time, issue time)."""
    s, steps = run([payment("c1", 100, paid_day, "i1")])
    assert steps[0].status == OK
    assert s.unapplied_units == units(100) and s.credit == 0 and s.conserved()
    s, steps = run([invoice("c1", "i1", 100, 3, 33)], state=s)
    assert "i1" not in s.invoices and s.held == () and s.unapplied_units == 0
    assert s.n_paid == 1
    assert s.sum_days_to_pay == pytest.approx(expected_paid_day - 3.0)
    assert s.recent[-1] == pytest.approx(expected_paid_day - 33.0)
    [label] = steps[0].labels
    assert label.y == 0 and s.conserved()


def test_held_payment_naming_a_known_and_an_unknown_invoice() -> None:
    s, _ = run([invoice("c1", "i1", 60, 0, 30), payment("c1", 100, 1, "i1", "i2")])
    assert "i1" not in s.invoices
    assert s.unapplied_units == units(40)
    s, _ = run([invoice("c1", "i2", 100, 2, 32)], state=s)
    assert s.invoices["i2"].open == units(60) and s.unapplied_units == 0 and s.conserved()


def test_overpayment_becomes_credit_and_credit_pays_the_next_invoice() -> None:
    s, _ = run([invoice("c1", "i1", 100, 0, 30), payment("c1", 150, 5)])
    assert "i1" not in s.invoices and s.credit == units(50)
    assert s.conserved()
    s, _ = run([invoice("c1", "i2", 80, 20, 50)], state=s)
    assert s.invoices["i2"].open == units(30) and s.credit == 0 and s.conserved()
    s, steps = run([payment("c1", 200, 21, "i2"), invoice("c1", "i3", 50, 40, 45)], state=s)
    assert s.credit == units(120)  # 200 - 30 (i2) - 50 (i3, paid by credit at issue)
    assert "i3" not in s.invoices
    [label] = steps[1].labels
    assert (label.invoice_id, label.y) == ("i3", 0) and s.conserved()


def test_held_payments_beyond_the_cap_become_credit() -> None:
    cfg = ScoringConfig()
    s = st.CustomerState("c1")
    for k in range(cfg.max_unapplied + 4):
        tr.receive_payment(s, units(10), ts(k), (f"future-{k}",), cfg)
        assert s.conserved()
    assert len(s.held) == cfg.max_unapplied
    assert s.credit == units(40) and s.unapplied_units == units(10 * cfg.max_unapplied)


def test_second_held_payment_for_the_same_invoice_becomes_credit() -> None:
    s, _ = run([payment("c1", 100, 0, "i1"), payment("c1", 100, 1, "i1"),
                invoice("c1", "i1", 100, 2, 32)])
    assert "i1" not in s.invoices
    assert s.held == () and s.credit == units(100)
    s, _ = run([invoice("c1", "i2", 100, 3, 33)], state=s)
    assert "i2" not in s.invoices  # paid by the credit


# --- idempotency and rejection -------------------------------------------------------------


def without(d: dict, *keys: str) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in d.items() if k not in keys}


def test_duplicate_event_id_is_reported_and_leaves_the_state_unchanged() -> None:
    pay = payment("c1", 40, 5)
    s, _ = run([invoice("c1", "i1", 100, 0, 30), pay])
    before = snapshot(s)
    s, step = processor().apply(s, pay)
    assert step.status == DUPLICATE and step.reason == "event_id already applied"
    assert step.score is None and step.labels == []
    assert snapshot(s) == before
    s, step = processor().apply(s, payment("c1", 40, 5, event_id=pay.event_id + "-other"))
    assert step.status == OK and s.invoices["i1"].open == units(20)


def test_redelivery_flood_does_not_evict_other_event_ids() -> None:
    first, other = payment("c1", 10, 5), payment("c1", 10, 6)
    s, _ = run([invoice("c1", "i1", 100, 0, 30), first, other])
    proc = processor()
    for _ in range(CFG.dedupe_ids):
        s, step = proc.apply(s, other)
        assert step.status == DUPLICATE
    s, step = proc.apply(s, first)
    assert step.status == DUPLICATE
    assert s.invoices["i1"].open == units(80)


def test_redelivered_source_offset_is_a_duplicate() -> None:
    """Kafka redelivers the same record (same event, same offset): recognised by event_id."""
    proc = processor()
    inv = invoice("c1", "i1", 100, 0, 30)
    pay = payment("c1", 50, 1)
    s, step = proc.apply(None, inv)
    assert step.status == OK
    s, step = proc.apply(s, pay)
    assert step.status == OK
    before = snapshot(s)
    for event in (inv, pay):
        s, step = proc.apply(s, event)
        assert step.status == DUPLICATE and step.reason == "event_id already applied"
        assert snapshot(s) == before
    # a new event id applies, whatever offset it came from (the engine reorders by event time)
    s, step = proc.apply(s, payment("c1", 10, 2))
    assert step.status == OK and s.invoices["i1"].open == units(40)


def test_currency_mismatch_is_rejected_with_a_reason_and_changes_no_books() -> None:
    s, _ = run([invoice("c1", "i1", 100, 0, 30)])
    before = snapshot(s)
    s, step = processor().apply(s, payment("c1", 100, 5, "i1", currency="USD"))
    assert step.status == REJECTED
    assert "USD" in step.reason and "EUR" in step.reason
    assert step.score is None and step.alerts == []
    # the id is remembered (a redelivery is a duplicate, not a second dead letter)
    assert without(snapshot(s), "seen") == without(before, "seen")
    assert s.invoices["i1"].open == units(100) and s.currency == "EUR"


def test_rejected_first_event_does_not_fix_the_customers_currency() -> None:
    proc = processor()
    s, step = proc.apply(None, adjust("c1", "nope", 10, 0, currency="USD"))
    assert step.status == REJECTED
    assert s.currency is None and s.first_seen == 0.0 and s.last_event == 0.0
    s, step = proc.apply(s, invoice("c1", "i1", 100, 1, 31, currency="EUR"))
    assert step.status == OK


@pytest.mark.parametrize("amount", [0, -100])
def test_state_functions_reject_non_positive_invoices_and_payments(amount: int) -> None:
    s = fresh(("i1", 100, 0, 30))
    before = snapshot(s)
    with pytest.raises(tr.Rejected, match="positive"):
        tr.issue_invoice(s, "i2", ts(1), ts(31), amount, array("d", X), 0.3, CFG)
    with pytest.raises(tr.Rejected, match="positive"):
        tr.receive_payment(s, amount, ts(1), ("i1",), CFG)
    with pytest.raises(tr.Rejected, match="positive"):
        tr.receive_payment(s, amount, ts(1), (), CFG)
    assert snapshot(s) == before


@pytest.mark.parametrize("amount", [0, -100])
def test_state_functions_reject_non_positive_adjustments(amount: int) -> None:
    s = fresh(("i1", 100, 0, 30))
    before = snapshot(s)
    with pytest.raises(tr.Rejected, match="positive"):
        tr.adjust_invoice(s, "i1", amount, ts(1), "credit_note", CFG)
    assert snapshot(s) == before


def test_unknown_invoice_adjustment_or_dispute_is_rejected() -> None:
    s = fresh(("i1", 100, 0, 30))
    before = snapshot(s)
    with pytest.raises(tr.Rejected, match="not known"):
        tr.adjust_invoice(s, "zz", units(10), ts(1), "credit_note", CFG)
    with pytest.raises(tr.Rejected, match="not known"):
        tr.set_disputed(s, "zz", True)
    assert snapshot(s) == before


def test_reissuing_an_invoice_id_is_rejected_while_open_and_after_close() -> None:
    s, steps = run([invoice("c1", "i1", 100, 0, 30), invoice("c1", "i1", 100, 1, 31)])
    assert steps[1].status == REJECTED and "already issued" in steps[1].reason
    assert s.billed == units(100) and s.n_invoices == 1
    s, steps = run([payment("c1", 100, 2, "i1"), invoice("c1", "i1", 100, 3, 33)], state=s)
    assert steps[1].status == REJECTED and "already issued" in steps[1].reason
    assert s.invoices == {} and s.billed == units(100) and s.conserved()


# --- time passing and labels ----------------------------------------------------------------


def test_invoice_passing_due_is_noticed_once() -> None:
    s = fresh(("i1", 100, 0, 30))
    assert tr.advance(s, ts(30), CFG) == ([], [])
    labels, overdue = tr.advance(s, ts(30) + 1.0, CFG)
    assert labels == [] and [i.invoice_id for i in overdue] == ["i1"]
    assert tr.advance(s, ts(31), CFG) == ([], [])


def test_open_invoice_resolves_late_exactly_once_at_due_grace_lateness() -> None:
    cfg = ScoringConfig(grace_days=5.0, label_lateness_days=1.0)
    s = fresh(("i1", 100, 0, 30))
    deadline = ts(30) + 6 * DAY
    assert tr.next_deadline(s, ts(30) + 2.0, cfg) == deadline
    labels, _ = tr.advance(s, deadline - 1.0, cfg)
    assert labels == []
    labels, _ = tr.advance(s, deadline, cfg)
    [label] = labels
    assert (label.invoice_id, label.y, label.resolved_at) == ("i1", 1, deadline)
    assert s.n_labels == 1 and s.n_late == 1 and s.invoices["i1"].x is None
    assert tr.advance(s, deadline + 10 * DAY, cfg) == ([], [])
    assert tr.next_deadline(s, deadline, cfg) is None
    # a later payment closes it but teaches nothing again
    assert tr.receive_payment(s, units(100), deadline + DAY, ("i1",), cfg) == []
    assert s.n_labels == 1 and s.n_paid == 1 and "i1" not in s.invoices


def test_late_resolution_is_learned_once_through_the_processor() -> None:
    proc = processor()
    s, _ = run([invoice("c1", "i1", 100, 0, 30), payment("c1", 1, 40)], proc)
    assert proc.model.labels_seen == 1
    s, steps = run([payment("c1", 99, 45, "i1")], proc, s)
    assert steps[0].labels == [] and proc.model.labels_seen == 1 and s.n_labels == 1


@pytest.mark.parametrize(("paid_after_due_days", "y"),
                         [(-3.0, 0), (4.99, 0), (5.0, 0), (5.01, 1), (5.9, 1)])
def test_label_on_full_payment_compares_with_due_plus_grace(paid_after_due_days: float,
                                                              y: int) -> None:
    s = fresh(("i1", 100, 0, 30))
    [label] = tr.receive_payment(s, units(100), ts(30 + paid_after_due_days), (), CFG)
    assert label.y == y and s.n_late == y and s.n_labels == 1


def test_write_off_closes_the_invoice_with_a_late_label() -> None:
    s = fresh(("i1", 100, 0, 30))
    tr.receive_payment(s, units(30), ts(5), ("i1",), CFG)
    [label] = tr.adjust_invoice(s, "i1", units(70), ts(10), "write_off", CFG)
    assert (label.invoice_id, label.y) == ("i1", 1)
    assert s.invoices == {} and s.n_late == 1 and s.conserved()


def test_credit_note_cancelling_an_unpaid_invoice_drops_its_snapshot() -> None:
    s = fresh(("i1", 100, 0, 30))
    assert tr.adjust_invoice(s, "i1", units(120), ts(10), "credit_note", CFG) == []
    assert s.invoices == {} and s.n_labels == 0 and s.n_paid == 0
    assert s.credit == units(20) and s.conserved()  # the excess is the customer's
    assert tr.advance(s, ts(100), CFG) == ([], [])


def test_credit_note_finishing_a_partly_paid_invoice_counts_as_paid() -> None:
    s = fresh(("i1", 100, 0, 30))
    tr.receive_payment(s, units(90), ts(20), ("i1",), CFG)
    [label] = tr.adjust_invoice(s, "i1", units(10), ts(25), "credit_note", CFG)
    assert label.y == 0 and s.n_paid == 1 and s.conserved()


def test_disputed_invoice_gets_no_overdue_notice_and_no_label_by_deadline() -> None:
    s = fresh(("i1", 100, 0, 30), ("i2", 100, 0, 30))
    tr.set_disputed(s, "i1", True)
    assert s.n_disputes == 1
    labels, overdue = tr.advance(s, ts(60), CFG)
    assert [lb.invoice_id for lb in labels] == ["i2"]
    assert [i.invoice_id for i in overdue] == ["i2"]
    tr.set_disputed(s, "i1", False)
    labels, overdue = tr.advance(s, ts(61), CFG)
    assert labels == [] and [i.invoice_id for i in overdue] == ["i1"]  # collectable again
    assert tr.advance(s, ts(200), CFG) == ([], [])  # ever disputed: resolves only on close
    assert tr.next_deadline(s, ts(61), CFG) is None
    [label] = tr.receive_payment(s, units(100), ts(201), ("i1",), CFG)
    assert label.y == 1
    tr.set_disputed(s, "i1", True)  # a dispute on a closed invoice changes nothing
    assert s.n_disputes == 1


# --- bounded state -----------------------------------------------------------------------


def test_state_stays_bounded_after_500_invoices() -> None:
    cfg = ScoringConfig()
    proc = processor(cfg)
    s = None
    for k in range(500):
        s, a = proc.apply(s, invoice("c1", f"i{k}", 100, k, k + 30))
        s, b = proc.apply(s, payment("c1", 100, k + 0.5, f"i{k}"))
        assert a.status == b.status == OK
    assert s is not None
    assert s.n_invoices == 500 and s.n_paid == 500 and s.invoices == {}
    assert len(st.ring_ids(s.seen)) == cfg.dedupe_ids
    assert len(st.ring_ids(s.closed)) == 2 * cfg.history
    assert len(s.recent) == cfg.history
    assert len(s.p_hist) <= 8
    assert len(s.alert_at or {}) <= 3
    assert s.conserved()


# --- conservation property ------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(customer_events())
def test_any_event_sequence_conserves_money(events: list) -> None:  # type: ignore[type-arg]
    proc = processor()
    s = None
    for event in events:
        s, step = proc.apply(s, event)
        assert step.status in (OK, REJECTED)
        assert s.conserved(), (event, s)
        assert all(0 < inv.open <= inv.amount for inv in s.invoices.values())
        assert s.credit >= 0 and all(h.units > 0 for h in s.held)


# --- packed records -----------------------------------------------------------------------

INVOICE_VALUES = {"invoice_id": "INV-7", "issued": 1.5e9 + 0.25, "due": 1.5e9 + 86_400.5,
                  "amount": 10**16, "open": 10**16 - 1, "p_late": 0.1 + 0.2, "x": iv.pack([0.0, -0.0, 2.5]),
                  "label": 1, "disputed": True, "ever_disputed": True, "payments": 3,
                  "last_paid": 1.5e9 + 7.0, "overdue_noticed": True}


def test_an_invoice_record_keeps_every_field_exactly() -> None:
    inv = iv.Invoice(**INVOICE_VALUES)
    assert {name: getattr(inv, name) for name in iv.INVOICE_FIELDS} == INVOICE_VALUES
    assert iv.Invoice.from_packed(inv.packed) == inv
    bare = iv.Invoice("i", 1.0, 2.0, 3, 3, 0.5, None)
    flags = (bare.label, bare.disputed, bare.ever_disputed, bare.overdue_noticed)
    assert flags == (None, False, False, False)
    assert (bare.payments, bare.last_paid, bare.x, bare.snapshot) == (0, 0.0, None, None)


def test_invoice_fields_are_written_one_at_a_time() -> None:
    inv = iv.Invoice(**{**INVOICE_VALUES, "label": None, "disputed": False, "x": None})
    inv.open, inv.disputed, inv.label, inv.x = 5, True, 0, iv.pack([1.0])
    assert (inv.open, inv.disputed, inv.ever_disputed, inv.label) == (5, True, True, 0)
    assert list(inv.snapshot or []) == [1.0]
    inv.ever_disputed, inv.label, inv.x = False, None, None
    assert (inv.disputed, inv.ever_disputed, inv.label, inv.x) == (True, False, None, None)
    assert inv.invoice_id == "INV-7" and inv.amount == 10**16  # the rest untouched


def test_paying_and_resolving_an_invoice() -> None:
    inv = iv.Invoice("i", 1.0, 2.0, 100, 100, 0.5, iv.pack([3.0]))
    assert inv.pay(30, 9.0) == (30, 70) and inv.pay(200, 5.0) == (70, 0) and inv.pay(1, 10.0) == (0, 0)
    assert (inv.open, inv.payments, inv.last_paid) == (0, 2, 9.0)
    assert inv.resolve(1) == iv.pack([3.0]) and (inv.label, inv.x) == (1, None)


@pytest.mark.parametrize("bad", [{"invoice_id": ""}, {"invoice_id": "i" * 256}, {"x": b""},
                                 {"label": 2}])
def test_invoice_values_a_record_cannot_hold_are_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        iv.Invoice(**{**INVOICE_VALUES, **bad})


def test_a_truncated_record_is_refused() -> None:
    with pytest.raises(ValueError, match="not an invoice record"):
        iv.Invoice.from_packed(iv.Invoice(**INVOICE_VALUES).packed[:56])


def test_open_invoices_find_ids_exactly_and_keep_issue_order() -> None:
    invs = iv.NO_INVOICES
    for inv_id in ("i1", "i10", "i100"):
        invs = invs.adding(iv.Invoice(inv_id, 1.0, 2.0, 1, 1, 0.5, None))
    assert invs.keys() == ["i1", "i10", "i100"] and len(invs) == 3 and iv.NO_INVOICES == {}
    assert invs["i10"].invoice_id == "i10" and invs[1] is invs["i10"] and list(invs) == list(invs.values())
    assert "i1" in invs and "i" not in invs and 3 not in invs
    assert invs.get("i1000") is None and invs.get("x" * 300) is None
    with pytest.raises(KeyError):
        invs["i2"]
    fewer = invs.without(invs["i1"])
    assert fewer.keys() == ["i10", "i100"] and len(invs) == 3  # a new tuple, this one unchanged
    assert fewer == {"i10": invs["i10"], "i100": invs["i100"]} and fewer != {"i10": invs["i10"]}
    assert fewer == iv.OpenInvoices(fewer.values()) and fewer != invs and isinstance(fewer, tuple)


def test_alert_times_are_kept_per_kind_and_read_as_the_dict_they_replace() -> None:
    s = st.CustomerState("c1")
    assert s.alert_at is None and s.last_alert("risk_spike") is None and s.alerts is None
    s.note_alert("risk_spike", 10.0)
    s.note_alert("entered_high_risk", 5.0)
    s.note_alert("risk_spike", 12.5)
    assert s.alert_at == {"entered_high_risk": 5.0, "risk_spike": 12.5}
    assert list(s.alert_at) == ["risk_spike", "entered_high_risk"]  # first raised first, as in a dict
    assert s.last_alert("high_risk_overdue") is None and s.last_alert("risk_spike") == 12.5
    assert st.CustomerState("c1", alert_at=s.alert_at) == s
    s.alert_at = {}
    assert s.alerts is None
    with pytest.raises(ValueError, match="unknown alert kinds"):
        s.alert_at = {"made_up": 1.0}


def test_history_numbers_recent_outcomes_and_scores_read_as_fields() -> None:
    numbers = {"sum_days_late": 1.5, "sum_days_late_w": -0.0, "sum_w": 2.25, "sum_days_to_pay": 3.0,
               "sum_terms_days": 60.0, "ewma_days_late": 0.1 + 0.2, "first_seen": 1.7e9 + 0.5,
               "last_payment": 1.7e9 + 9.0}
    s = st.CustomerState("c1", recent=[-2.442, 2.174], p_hist=(1.0, 0.25, 2.0, 0.5), **numbers)
    assert {name: getattr(s, name) for name in numbers} == numbers
    assert s.recent == (-2.442, 2.174) and s.p_hist == (1.0, 0.25, 2.0, 0.5)
    s.sum_w += 1.0
    s.recent = (*s.recent[1:], 7.0)
    s.p_hist = ()
    assert (s.sum_w, s.first_seen, s.recent, s.p_hist) == (3.25, 1.7e9 + 0.5, (2.174, 7.0), ())
    assert st.CustomerState("c1").recent == () and st.CustomerState("c1").p == -1.0
