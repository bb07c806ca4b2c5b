"""One simulated customer: its hidden behaviour and its invoice-by-invoice plan.

The plans are made so that the arscore core, which applies unnamed payments
oldest-first, keeps overpayments as a credit balance and applies that credit to
the next invoice issued, settles every invoice exactly when the simulator says
it is settled, whatever the delivery noise. In particular:

- events of one invoice that must be seen in order (issue, credit note, payments)
  are spaced further apart than the largest delivery delay;
- a payment names no invoice only when every older invoice of the customer was
  settled well before it (so oldest-first can only pick that invoice), and is
  never an overpayment;
- an overpayment is made only when no invoice is issued close to it, and the
  customer's credit balance is consumed by the next invoice issued after it.

Customers (shares 55/20/15/10 by default) settle each invoice at due date plus:

- ``stable``: -5 to +3 days;
- ``slow``: 8 to 25 days (around a per-customer mean of 10-22 days);
- ``erratic``: -5 to +5 days mostly, 5-30 days for 35% of invoices, and 30-90 days
  or never for a per-customer 3-20% of them;
- ``deteriorating``: like ``stable`` until ``deteriorates_at`` (15-60% into the
  horizon), then about ``2 + 0.5 x`` days late for an invoice due ``x`` days after
  the change (+0-10 days, at most 150), with a growing chance (up to 60%) of never
  paying: 30+ days past due within about two months of the change.

Each customer has net-30/45/60 terms, 0.5-6 invoices a month (log-uniform),
log-normal amounts around a median of 200-20,000 and one currency (80% EUR, 12%
USD, 8% GBP). Disputed invoices are paid 2-10 days after their resolution, so a
dispute can take any customer past 30 days overdue.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from models.tools.simulator.config import (
    ADJUSTED,
    CREDIT_REASONS,
    CURRENCIES,
    DAY,
    DISPUTE_REASONS,
    DISPUTED,
    HOUR,
    INF,
    ISSUED,
    PAYMENT,
    RESOLVED,
    TERMS,
    SimulationConfig,
    money_text,
    rfc3339,
)


def _weighted(rng: random.Random, options: tuple[tuple[Any, float], ...]) -> Any:
    x = rng.random()
    for value, weight in options:
        x -= weight
        if x < 0:
            return value
    return options[-1][0]


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


# --- one customer ----------------------------------------------------------------------

# an internal event: (time, customer index, sequence, kind, data)
Item = tuple[int, int, int, int, tuple[Any, ...]]


@dataclass(slots=True)
class PlannedInvoice:
    invoice_id: str
    issued: int
    due: int
    amount: int
    events: list[tuple[int, int, tuple[Any, ...]]]
    settled: int | None


class Customer:
    """One customer's hidden behaviour and its invoice-by-invoice plan."""

    def __init__(self, index: int, profile: str, seed: int, cfg: SimulationConfig) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.cfg = cfg
        self.index = index
        self.customer_id = f"C{index:06d}"
        self.profile = profile
        self.terms_days: int = _weighted(rng, TERMS)
        self.currency: str = _weighted(rng, CURRENCIES)
        self.median_cents = round(_log_uniform(rng, 200.0, 20_000.0) * 100)
        self.per_month = _log_uniform(rng, 0.5, 6.0)
        self.installments = rng.random() < cfg.partial_rate
        self.slow_mean = rng.uniform(10.0, 22.0)
        self.erratic_tail = rng.uniform(0.03, 0.2)
        start, end = cfg.start_ts, cfg.end_ts
        self.start, self.end = start, end
        self.deteriorates_at: int | None = None
        if profile == "deteriorating":
            lo, hi = 0.15 * cfg.days, 0.6 * cfg.days
            self.deteriorates_at = start + int(rng.uniform(lo, hi) * DAY)
        # issue times for the whole horizon (a few dozen ints): overpayments look ahead
        mean_gap = 30.4375 * DAY / self.per_month
        times: list[int] = []
        t = start + rng.expovariate(1.0 / mean_gap)
        while t < end:
            times.append(int(t))
            t += max(60.0, rng.expovariate(1.0 / mean_gap))
        self.issue_times = times
        # ordering margin: longer than the largest delivery delay
        self.sep = int(cfg.max_disorder_hours * HOUR) + HOUR
        self.credits: list[tuple[int, int]] = []  # (available from, cents), by time
        self.older_settled = start  # latest settlement of the invoices planned so far
        self.n_payments = 0
        self.first_30dpd_at: int | None = None
        self.first_30dpd_invoice: str | None = None
        self.n_invoices = 0
        self.n_open_at_end = 0

    # behaviour -------------------------------------------------------------------------

    def _stable_offset(self) -> float:
        return self.rng.uniform(-5.0, 3.0)

    def _offset_days(self, due: int) -> float | None:
        """Days after due at which the customer means to settle; None: never."""
        rng = self.rng
        if self.profile == "stable":
            return self._stable_offset()
        if self.profile == "slow":
            return min(25.0, max(8.0, rng.gauss(self.slow_mean, 4.0)))
        if self.profile == "erratic":
            x = rng.random()
            if x < self.erratic_tail:  # very late, a fifth of those never paid
                return None if rng.random() < 0.2 else rng.uniform(30.0, 90.0)
            if x < self.erratic_tail + 0.35:
                return rng.uniform(5.0, 30.0)
            return rng.uniform(-5.0, 5.0)
        # deteriorating
        base = self._stable_offset()
        change = self.deteriorates_at
        assert change is not None
        if due + base * DAY < change:
            return base
        since = max(0.0, (due - change) / DAY)
        if rng.random() < min(0.6, since / 200.0):
            return None
        return max(base, min(150.0, 2.0 + 0.5 * since + rng.uniform(0.0, 10.0)))

    def _no_issue_near(self, t: int) -> bool:
        times = self.issue_times
        lo = t - self.sep
        # binary search for the first issue time > lo
        i, j = 0, len(times)
        while i < j:
            m = (i + j) // 2
            if times[m] <= lo:
                i = m + 1
            else:
                j = m
        return i == len(times) or times[i] >= t + self.sep

    # planning --------------------------------------------------------------------------

    def plan(self) -> Iterator[PlannedInvoice]:
        """Plan every invoice of the horizon, in issue order."""
        for issued in self.issue_times:
            yield self._plan_one(issued)

    def _plan_one(self, issued: int) -> PlannedInvoice:
        rng, cfg, sep, end = self.rng, self.cfg, self.sep, self.end
        self.n_invoices += 1
        invoice_id = f"INV-{self.index:06d}-{self.n_invoices:05d}"
        due = issued + self.terms_days * DAY
        amount = max(100, round(self.median_cents * math.exp(rng.gauss(0.0, 0.6))))
        events: list[tuple[int, int, tuple[Any, ...]]] = [
            (issued, ISSUED, (invoice_id, amount, due))]
        open_ = amount
        settled: int | None = None
        # a credit balance from earlier overpayments is applied at issue
        while open_ > 0 and self.credits and self.credits[0][0] < issued:
            avail, cents = self.credits.pop(0)
            used = min(cents, open_)
            open_ -= used
            if cents > used:
                self.credits.insert(0, (avail, cents - used))
        if open_ == 0:
            settled = issued
        ready = issued + sep  # money may move from here on
        disputed = False
        pay_after = ready
        if open_ > 0 and rng.random() < cfg.dispute_rate:
            disputed = True
            at = max(issued + int(rng.uniform(2.0, max(3.0, self.terms_days - 5.0)) * DAY), ready)
            resolved = max(at + int(rng.uniform(5.0, 40.0) * DAY), at + sep)
            events.append((at, DISPUTED, (invoice_id, rng.choice(DISPUTE_REASONS))))
            credit_issued = rng.random() < 0.4 and open_ > 1
            events.append((resolved, RESOLVED,
                           (invoice_id, "credit_issued" if credit_issued else "rejected")))
            pay_after = resolved + int(rng.uniform(2.0, 10.0) * DAY)
            if credit_issued:
                cents = max(1, min(open_ - 1, round(open_ * rng.uniform(0.1, 0.5))))
                events.append((resolved + HOUR, ADJUSTED,
                               (invoice_id, cents, "dispute settlement")))
                open_ -= cents
                pay_after = max(pay_after, resolved + HOUR + sep)
        elif open_ > 1 and rng.random() < cfg.credit_note_rate:
            at = max(issued + int(rng.uniform(2.0, 15.0) * DAY), ready)
            cents = max(1, min(open_ - 1, round(open_ * rng.uniform(0.05, 0.3))))
            events.append((at, ADJUSTED, (invoice_id, cents, rng.choice(CREDIT_REASONS))))
            open_ -= cents
            pay_after = at + sep
        if open_ > 0:
            offset = self._offset_days(due)
            if offset is not None:
                target = max(due + int(offset * DAY), pay_after)
                settled = self._plan_payments(invoice_id, open_, target, pay_after, disputed,
                                              amount, events)
        events = [e for e in events if e[0] < end]
        if settled is not None and settled >= end:
            settled = None
        self._record(invoice_id, due, settled)
        return PlannedInvoice(invoice_id, issued, due, amount, events, settled)

    def _plan_payments(self, invoice_id: str, owed: int, target: int, earliest: int,
                       disputed: bool, amount: int,
                       events: list[tuple[int, int, tuple[Any, ...]]]) -> int:
        """Add the payment events settling ``owed``; returns the settlement time."""
        rng, cfg, sep = self.rng, self.cfg, self.sep
        parts = 1
        if self.installments and owed >= 300 and rng.random() < 0.5:
            parts = rng.choice((2, 3))
        # times: spread backwards from the target, then pushed forward to keep spacing
        times: list[int] = []
        back = [int(rng.uniform(7.0, 20.0) * DAY) for _ in range(parts - 1)]
        t_prev = earliest - sep
        for k in range(parts):
            t = target - sum(back[k:])
            t = max(t, earliest, t_prev + sep)
            times.append(t)
            t_prev = t
        # amounts
        cuts: list[int] = []
        left = owed
        for k in range(parts - 1):
            share = rng.uniform(0.2, 0.5) if k == 0 else rng.uniform(0.3, 0.6)
            cents = max(1, min(left - (parts - 1 - k), round(left * share)))
            cuts.append(cents)
            left -= cents
        cuts.append(left)
        last = times[-1]
        overpay = 0
        if rng.random() < cfg.overpayment_rate and last < self.end and self._no_issue_near(last):
            overpay = max(1, min(5_000, round(amount * rng.uniform(0.005, 0.05))))
        unnamed = (rng.random() < cfg.unnamed_payment_rate and not overpay and not disputed
                   and times[0] >= self.older_settled + sep)
        for k, (t, cents) in enumerate(zip(times, cuts, strict=True)):
            if k == parts - 1:
                cents += overpay
            self.n_payments += 1
            payment_id = f"PAY-{self.index:06d}-{self.n_payments:05d}"
            events.append((t, PAYMENT, (payment_id, cents, () if unnamed else (invoice_id,))))
        if overpay:
            insort(self.credits, (last, overpay))
        return last

    def _record(self, invoice_id: str, due: int, settled: int | None) -> None:
        if settled is None:
            self.n_open_at_end += 1
        self.older_settled = max(self.older_settled, INF if settled is None else settled)
        mark = due + 30 * DAY
        if mark < self.end and (settled is None or settled > mark) and (
                self.first_30dpd_at is None or mark < self.first_30dpd_at):
            self.first_30dpd_at = mark
            self.first_30dpd_invoice = invoice_id

    def truth(self) -> dict[str, Any]:
        """This customer's ground truth; complete once :meth:`plan` is exhausted."""
        return {
            "profile": self.profile,
            "deteriorates_at": None if self.deteriorates_at is None else rfc3339(self.deteriorates_at),
            "first_30dpd_at": None if self.first_30dpd_at is None else rfc3339(self.first_30dpd_at),
            "first_30dpd_invoice": self.first_30dpd_invoice,
            "terms_days": self.terms_days,
            "currency": self.currency,
            "median_amount": money_text(self.median_cents),
            "invoices_per_month": round(self.per_month, 3),
            "pays_in_installments": self.installments,
            "invoices": self.n_invoices,
            "open_at_end": self.n_open_at_end,
        }

    def stream(self) -> Iterator[Item]:
        """This customer's events in event-time order, planned one invoice at a time."""
        pending: list[Item] = []
        seq = 0
        index = self.index
        for inv in self.plan():
            while pending and pending[0][0] < inv.issued:
                yield heapq.heappop(pending)
            for t, kind, data in inv.events:
                heapq.heappush(pending, (t, index, seq, kind, data))
                seq += 1
        while pending:
            yield heapq.heappop(pending)
