"""Scoring (bands, priority, treatment, reasons) and the alert policy."""

from __future__ import annotations

import re

import pytest
from helpers import dispute, invoice, payment, processor, run, ts, units

from models import invoice as iv
from models import state as st
from models.alerts import alert_id, decide, track_p
from models.config import ScoringConfig
from models.features import FEATURE_NAMES, OpenBook, features
from models.policy import band_for, grace_seconds, next_band
from models.scoring import reasons, treatment
from schemas.records import ALERT_KINDS, TREATMENTS, Reason

CFG = ScoringConfig(band_hysteresis=0.05, alert_cooldown_days=7.0)  # pinned: these tests pin the mechanism
NO_COOLDOWN = ScoringConfig(alert_cooldown_days=0.0)


def inv(inv_id: str = "i1", *, due: float = 30.0, amount: float = 100, p: float = 0.3,
        disputed: bool = False) -> iv.Invoice:
    u = units(amount)
    return iv.Invoice(inv_id, ts(0), ts(due), u, u, p, None, disputed=disputed)


# --- bands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("prev", "p", "band"), [
    (0, 0.0, 0), (0, 0.25, 1), (0, 0.5, 2), (0, 0.75, 3), (0, 0.99, 3),   # up at once
    (2, 0.49, 2), (2, 0.451, 2), (2, 0.449, 1), (2, 0.1, 0),              # down only clearly
    (3, 0.72, 3), (3, 0.69, 2), (3, 0.3, 1), (1, 0.21, 1), (1, 0.19, 0),
])
def test_band_goes_up_at_a_cutoff_and_down_only_past_the_hysteresis(prev: int, p: float,
                                                                    band: int) -> None:
    assert next_band(prev, p, CFG) == band


def _entered_high(seq: list[float], cfg: ScoringConfig) -> int:
    s = st.CustomerState("c1")
    count = 0
    for k, p in enumerate(seq):
        new = next_band(s.band, p, cfg)
        low = track_p(s, p, ts(k), cfg)
        drafts = decide(s, prev_band=s.band, band=new, p=p, low=low, now=ts(k),
                        trigger=f"e{k}", went_overdue=[], cfg=cfg)
        count += sum(d.kind == "entered_high_risk" for d in drafts)
        s.band = new
    return count


def test_no_flapping_around_a_cutoff() -> None:
    seq = [0.51, 0.49, 0.51, 0.49, 0.51, 0.49]
    assert _entered_high(seq, NO_COOLDOWN) == 1
    # the same sequence without hysteresis (and without cool-down) does flap: the test can fail
    flappy = ScoringConfig(alert_cooldown_days=0.0, band_hysteresis=0.0)
    assert _entered_high(seq, flappy) == 3


def test_cool_down_suppresses_the_same_kind_then_lets_it_through() -> None:
    s = st.CustomerState("c1")
    kw = {"p": 0.6, "low": 0.6, "went_overdue": [], "cfg": CFG}
    first = decide(s, prev_band=1, band=2, now=ts(0), trigger="a", **kw)
    assert [d.kind for d in first] == ["entered_high_risk"]
    assert s.alert_at == {"entered_high_risk": ts(0)}
    assert decide(s, prev_band=1, band=2, now=ts(6.9), trigger="b", **kw) == []
    again = decide(s, prev_band=1, band=2, now=ts(7), trigger="c", **kw)
    assert [d.kind for d in again] == ["entered_high_risk"]
    # a cooling kind does not hold back another kind
    spike = decide(s, prev_band=1, band=2, p=0.9, low=0.6, now=ts(8), trigger="d",
                   went_overdue=[], cfg=CFG)
    assert [d.kind for d in spike] == ["risk_spike"]


def test_risk_spike_threshold_and_window() -> None:
    cfg = ScoringConfig(spike_delta=0.25, spike_window_days=30.0, alert_cooldown_days=0.0)

    def kinds(p: float, low: float) -> list[str]:
        s = st.CustomerState("c1")
        return [d.kind for d in decide(s, prev_band=0, band=0, p=p, low=low, now=0.0,
                                       trigger="t", went_overdue=[], cfg=cfg)]

    assert kinds(0.75, 0.5) == ["risk_spike"]  # exactly the delta
    assert kinds(0.74, 0.5) == []
    s = st.CustomerState("c1")
    assert track_p(s, 0.2, ts(0), cfg) == 0.2  # nothing before: its own value
    assert track_p(s, 0.3, ts(10), cfg) == 0.2
    assert track_p(s, 0.5, ts(29), cfg) == 0.2
    assert track_p(s, 0.4, ts(35), cfg) == 0.3  # 0.2 (day 0) left the 30-day window
    assert track_p(s, 0.1, ts(36), cfg) == 0.3
    assert track_p(s, 0.35, ts(37), cfg) == 0.1


def test_gradual_rise_within_the_window_is_a_spike() -> None:
    cfg = ScoringConfig(alert_cooldown_days=0.0)
    s = st.CustomerState("c1")
    spikes = []
    for k in range(12):
        p = 0.10 + 0.03 * k
        now = ts(k * 0.5)
        low = track_p(s, p, now, cfg)
        assert low == pytest.approx(0.10)
        spikes += [k for d in decide(s, prev_band=0, band=0, p=p, low=low, now=now,
                                     trigger=f"e{k}", went_overdue=[], cfg=cfg)
                   if d.kind == "risk_spike"]
    assert spikes and spikes[0] == 9  # 0.37 - 0.10 >= 0.25


def test_high_risk_overdue_skips_disputed_and_needs_high_band() -> None:
    s = st.CustomerState("c1")
    disputed, plain, plain2 = inv("d", disputed=True), inv("a"), inv("b")
    kw = {"p": 0.6, "low": 0.6, "now": ts(31), "trigger": "t", "cfg": NO_COOLDOWN}
    assert decide(s, prev_band=2, band=2, went_overdue=[disputed], **kw) == []
    drafts = decide(s, prev_band=2, band=2, went_overdue=[disputed, plain, plain2], **kw)
    assert [(d.kind, d.invoice_id, d.trigger) for d in drafts] == [
        ("high_risk_overdue", "a", "a:overdue")]  # one alert per change, the first collectable
    assert decide(s, prev_band=1, band=1, went_overdue=[plain], **kw) == []
    paid = inv("z")
    paid.open = 0
    assert decide(s, prev_band=3, band=3, went_overdue=[paid], **kw) == []


def test_disputed_invoice_never_raises_high_risk_overdue_through_the_processor() -> None:
    """A high-risk customer (prior 0.9) with a disputed invoice passing due: no overdue alert."""
    cfg = ScoringConfig(prior_late_rate=0.9, alert_cooldown_days=0.0)
    proc = processor(cfg)
    s, _ = run([invoice("c1", "d1", 100, 0, 10), invoice("c1", "ok", 100, 0, 10),
                dispute("c1", "d1", 1)], proc)
    assert s.band == 3 and s.n_disputes == 1
    step = proc.advance(s, ts(10) + 2.0)
    assert step is not None
    assert [a.invoice_id for a in step.alerts if a.kind == "high_risk_overdue"] == ["ok"]
    s, steps = run([payment("c1", 1, 40, "ok"), payment("c1", 1, 80, "ok")], proc, s)
    assert all(a.kind != "high_risk_overdue" for step in steps for a in step.alerts)
    assert s.invoices["d1"].overdue_noticed is False and s.invoices["d1"].label is None


def test_alert_id_is_deterministic_and_distinguishes_its_parts() -> None:
    a = alert_id("c1", "risk_spike", "ev-9")
    assert a == alert_id("c1", "risk_spike", "ev-9")
    assert re.fullmatch(r"[0-9a-f]{20}", a)
    others = {alert_id("c2", "risk_spike", "ev-9"), alert_id("c1", "entered_high_risk", "ev-9"),
              alert_id("c1", "risk_spike", "ev-10")}
    assert a not in others and len(others) == 3


def test_alert_ids_repeat_for_the_same_trigger_across_runs() -> None:
    cfg = ScoringConfig(prior_late_rate=0.9)
    events = [invoice("c1", "i1", 100, 0, 10)]
    ids = []
    for _ in range(2):
        _, steps = run(events, processor(cfg))
        ids.append([(a.kind, a.alert_id) for step in steps for a in step.alerts])
    assert ids[0] == ids[1] and ids[0][0][0] == "entered_high_risk"
    assert ids[0][0][1] == alert_id("c1", "entered_high_risk", events[0].event_id)
    assert all(kind in ALERT_KINDS for kind, _ in ids[0])


# --- priority and treatment ---------------------------------------------------------------------


def test_priority_is_open_times_p_with_p_one_past_due_plus_grace() -> None:
    s = st.CustomerState("c1")
    s.invoices = iv.OpenInvoices([inv("a", due=30, amount=100, p=0.2), inv("b", due=10, amount=50, p=0.4)])
    s.invoices["a"].open = units(60)
    def priority(state: st.CustomerState, now: float) -> int:
        return OpenBook(state, now, grace_seconds(CFG)).priority

    assert priority(s, ts(5)) == round(units(60) * 0.2 + units(50) * 0.4)
    assert priority(s, ts(15)) == round(units(60) * 0.2 + units(50) * 0.4)  # at grace
    assert priority(s, ts(15) + 1.0) == round(units(60) * 0.2 + units(50) * 1.0)
    assert priority(s, ts(36)) == units(110)
    assert priority(st.CustomerState("c2"), ts(36)) == 0


@pytest.mark.parametrize(("band", "dpd", "disputed_only", "action"), [
    (0, 0.0, False, "none"), (0, 2.0, False, "friendly_reminder"),
    (1, 0.0, False, "friendly_reminder"), (2, 0.0, False, "call"), (2, 90.0, False, "call"),
    (3, 10.0, False, "escalate"), (3, 60.0, False, "escalate"), (3, 61.0, False, "credit_hold"),
    (3, 90.0, True, "none"),
])
def test_treatment_table(band: int, dpd: float, disputed_only: bool, action: str) -> None:
    assert treatment(band, dpd, disputed_only) == action
    assert action in TREATMENTS


# --- reasons --------------------------------------------------------------------------------


def _plain(r: Reason) -> None:
    assert isinstance(r.text, str) and r.text and r.text == r.text.strip()
    assert " " in r.text and "_" not in r.text, r.text  # words, not feature codes
    assert r.code in (*FEATURE_NAMES, "on_time")


def test_reasons_are_plain_words_from_the_state() -> None:
    proc = processor()
    s, _ = run([invoice("c1", "i1", 100, 0, 10), invoice("c1", "i2", 100, 1, 11),
                invoice("c1", "i3", 100, 2, 12), invoice("c1", "i4", 250, 3, 13),
                payment("c1", 100, 12, "i3"), payment("c1", 100, 30, "i1"),
                payment("c1", 100, 31, "i2")], proc)
    now = ts(40)
    x = features(s, now, CFG)
    why = reasons(s, x, now, None, CFG)
    assert 1 <= len(why) <= 3
    for r in why:
        _plain(r)
        assert r.weight > 0
    texts = [r.text for r in why]
    assert "3 of the last 4 invoices paid late" in texts  # i4 resolved late at its deadline
    assert any(re.fullmatch(r"250\.00 EUR overdue, oldest \d+ days past due", t) for t in texts)
    with_model = reasons(s, x, now, proc.model.contributions(x), CFG, limit=5)
    for r in with_model:
        _plain(r)
    assert len({r.text for r in with_model}) == len(with_model)  # no repeated sentence


def test_reasons_of_a_good_payer_and_of_a_new_customer() -> None:
    s, _ = run([invoice("c1", "i1", 100, 0, 30), payment("c1", 100, 5, "i1")])
    x = features(s, ts(6), CFG)
    assert reasons(s, x, ts(6), None, CFG) == (Reason("on_time", "pays on time", 0.0),)
    new = st.CustomerState("c2")
    assert reasons(new, features(new, ts(0), CFG), ts(0), None, CFG) == ()
    why = reasons(new, features(new, ts(0), CFG), ts(0), {"history_log": 1.0, "tenure_log": 0.5},
                  CFG)
    assert [r.text for r in why] == ["no payment history yet", "new customer"]
    _ = [_plain(r) for r in why]


def test_band_for_and_next_band_agree_going_up() -> None:
    for k in range(101):
        p = k / 100
        assert next_band(0, p, CFG) == band_for(p, CFG)
    assert next_band(3, 0.0, CFG) == 0


def test_a_recent_payment_is_never_given_as_a_reason() -> None:
    """Seen in the demo: 'no payment for 0 days' when the feature's contribution was positive."""
    from models.features import OpenBook
    from models.scoring import EXPLAINERS

    s, _ = run([invoice("c1", "i1", 100, 0, 30), payment("c1", 50, 10, "i1")])
    assert s is not None
    since = EXPLAINERS["days_since_payment_log"]
    v = features(s, ts(10), ScoringConfig())[FEATURE_NAMES.index("days_since_payment_log")]
    assert since(s, v, ts(10), OpenBook(s, ts(10), 5.0 * 86_400)) is None
    assert since(s, v, ts(40), OpenBook(s, ts(40), 5.0 * 86_400)) == "no payment for 30 days"


def test_reasons_rank_largest_first_ties_by_name_and_only_positive_pushes() -> None:
    """The per-event path passes a list, explain() a mapping: both rank the same way."""
    s, _ = run([invoice("c1", "i1", 100, 0, 10), invoice("c1", "i2", 250, 1, 11),
                payment("c1", 100, 30, "i1")])
    assert s is not None
    now = ts(40)
    x = features(s, now, CFG)
    weights = dict.fromkeys(FEATURE_NAMES, 0.0)
    weights.update({"tenure_log": float("nan"), "late_ratio": -2.0,  # never reasons
                    "open_count_log": 0.5, "max_days_past_due": 0.5,  # a tie: name order
                    "history_log": 0.1, "terms_months": 3.0})  # terms 1.0 month: no words
    as_list = [weights[name] for name in FEATURE_NAMES]
    for contributions in (weights, as_list):
        why = reasons(s, x, now, contributions, CFG)
        assert [r.code for r in why] == ["max_days_past_due", "open_count_log", "history_log"]
        assert [r.weight for r in why] == [0.5, 0.5, 0.1]
        assert [r.code for r in reasons(s, x, now, contributions, CFG, limit=1)] == [
            "max_days_past_due"]
        assert reasons(s, x, now, contributions, CFG, limit=0) == ()
