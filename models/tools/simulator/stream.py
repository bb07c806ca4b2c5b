"""A synthetic accounts-receivable event stream with known ground truth.

The simulator invents a population of customers with hidden payment behaviour
(``stable``, ``slow``, ``erratic``, ``deteriorating``), lets each of them receive
invoices and pay them (late or not, in instalments, naming the invoice or not,
disputing some, receiving credit notes) and yields the resulting events in the
wire form of :func:`schemas.events.event_to_dict`, in *file* order: sorted by
event time, except a share of events that arrive late and a share that are
delivered twice, as a Kafka topic replayed into a file would look.

Everything is deterministic given :attr:`SimulationConfig.seed`: one
:class:`random.Random` seeded from it derives a generator per customer and one for
the delivery noise; no global random state, no wall clock.

The stream is generated lazily: every customer plans one invoice at a time and
keeps only the future events of its open invoices, and customers are merged by
event time with a heap, so memory grows with the number of customers, not with
the length of the horizon.

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

:func:`ground_truth` reports, per customer, its hidden profile, when a
deteriorating customer changed (``deteriorates_at``) and the first moment one of
its invoices was 30 or more days past due while money was still open on it
(``first_30dpd_at``).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from bisect import insort
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PROFILES",
    "SimulationConfig",
    "SimulationStats",
    "ground_truth",
    "simulate",
]

DAY = 86_400
HOUR = 3_600
PROFILES = ("stable", "slow", "erratic", "deteriorating")
"""The hidden payment behaviours, in the order of :attr:`SimulationConfig.profile_shares`."""

_INF = 1 << 62
_TERMS = ((30, 0.5), (45, 0.3), (60, 0.2))
_CURRENCIES = (("EUR", 0.8), ("USD", 0.12), ("GBP", 0.08))
_DISPUTE_REASONS = ("price differs from the order", "goods not received", "quantity short",
                    "damaged goods", "duplicate billing")
_CREDIT_REASONS = ("price correction", "returned goods", "volume rebate", "damaged goods")
_MIN_YEAR, _MAX_YEAR = 2000, 2100

# internal event kinds
_ISSUED, _PAYMENT, _ADJUSTED, _DISPUTED, _RESOLVED = range(5)
_TYPE_NAMES = ("invoice.issued", "payment.received", "invoice.adjusted", "invoice.disputed",
               "invoice.dispute_resolved")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Every field has a default except the size of the population and horizon.

    Parameters
    ----------
    customers : int
        Number of customers (ids ``C000001`` ... in order). Must be positive.
    days : int
        Length of the horizon in days from ``start``. Must be positive. Events that
        would happen at or after the end are not emitted; invoices unpaid then stay open.
    seed : int
        Seed of the one :class:`random.Random` everything is derived from.
    start : datetime
        Start of the horizon; must carry a time zone. Default 2024-01-01T00:00Z.
    duplicate_rate : float
        Share of events delivered a second time (same ``event_id``, same content),
        within an hour after the first delivery (at-least-once input).
    disorder_rate : float
        Share of events that arrive late: moved later in the file by up to
        ``max_disorder_hours`` of event time; their own event time is unchanged.
    max_disorder_hours : float
        Largest delay of a late event: no event appears after an event more than
        this many hours younger than itself.
    partial_rate : float
        Share of customers that sometimes pay in instalments; such a customer pays
        each invoice in 2 or 3 instalments with probability 1/2.
    dispute_rate : float
        Share of invoices disputed (5-40 days before resolution; paid after it).
    credit_note_rate : float
        Share of invoices that receive a credit note (``invoice.adjusted`` kind
        ``credit_note``) for 5-30% of their amount before they are paid. Disputes
        resolved in the customer's favour add their own credit notes.
    unnamed_payment_rate : float
        Share of payments that name no invoice (the core applies them oldest first);
        applied only where oldest-first cannot pick a different invoice.
    overpayment_rate : float
        Share of invoices whose final payment exceeds what is owed (by 0.5-5%, at
        most 50.00); the customer deducts the credit from its next invoice.
    profile_shares : tuple of float
        Shares of ``stable``, ``slow``, ``erratic`` and ``deteriorating`` customers;
        the counts are allotted exactly (largest remainder), then shuffled.
    """

    customers: int
    days: int
    seed: int = 7
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    duplicate_rate: float = 0.005
    disorder_rate: float = 0.02
    max_disorder_hours: float = 36.0
    partial_rate: float = 0.15
    dispute_rate: float = 0.02
    credit_note_rate: float = 0.01
    unnamed_payment_rate: float = 0.08
    overpayment_rate: float = 0.01
    profile_shares: tuple[float, float, float, float] = (0.55, 0.20, 0.15, 0.10)

    def __post_init__(self) -> None:
        if isinstance(self.customers, bool) or not isinstance(self.customers, int) \
                or self.customers <= 0:
            raise ValueError(f"customers must be a positive integer, got {self.customers!r}")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days <= 0:
            raise ValueError(f"days must be a positive integer, got {self.days!r}")
        if self.start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if self.start.year < _MIN_YEAR or self.start.year + self.days / 365.2425 > _MAX_YEAR - 1:
            raise ValueError(f"the horizon must lie within the years {_MIN_YEAR}-{_MAX_YEAR - 2}")
        for name in ("duplicate_rate", "disorder_rate", "partial_rate", "dispute_rate",
                     "credit_note_rate", "unnamed_payment_rate", "overpayment_rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if not (math.isfinite(self.max_disorder_hours) and 0 <= self.max_disorder_hours <= 24 * 30):
            raise ValueError("max_disorder_hours must be between 0 and 720")
        shares = self.profile_shares
        if len(shares) != len(PROFILES) or any(s < 0 for s in shares) or sum(shares) <= 0:
            raise ValueError("profile_shares must be 4 non-negative numbers with a positive sum")

    @property
    def start_ts(self) -> int:
        """Start of the horizon in epoch seconds."""
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        """End of the horizon (exclusive) in epoch seconds."""
        return self.start_ts + self.days * DAY

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``start`` as RFC 3339)."""
        out = asdict(self)
        out["start"] = _ts(self.start_ts)
        out["profile_shares"] = list(self.profile_shares)
        return out


@dataclass
class SimulationStats:
    """Counters filled in by :func:`simulate` while its stream is consumed.

    ``truth`` is set once the stream is exhausted; it equals ``ground_truth(config)``.
    """

    events: int = 0
    """Events yielded, duplicates included."""
    duplicates: int = 0
    """Second deliveries of an event."""
    delayed: int = 0
    """Events moved later in the file than their event time."""
    out_of_order: int = 0
    """Events yielded after an event with a later event time."""
    invoices: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    truth: dict[str, Any] | None = None


# --- small helpers ---------------------------------------------------------------------


def _ts(t: int) -> str:
    """Epoch seconds -> RFC 3339 UTC with Z (same text as ``schemas.fields.format_time``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _weighted(rng: random.Random, options: tuple[tuple[Any, float], ...]) -> Any:
    x = rng.random()
    for value, weight in options:
        x -= weight
        if x < 0:
            return value
    return options[-1][0]


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _allot(n: int, shares: tuple[float, ...]) -> list[int]:
    """Split ``n`` into counts proportional to ``shares`` (largest remainder)."""
    total = sum(shares)
    raw = [n * s / total for s in shares]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


# --- one customer ----------------------------------------------------------------------

# an internal event: (time, customer index, sequence, kind, data)
_Item = tuple[int, int, int, int, tuple[Any, ...]]


@dataclass(slots=True)
class _Invoice:
    invoice_id: str
    issued: int
    due: int
    amount: int
    events: list[tuple[int, int, tuple[Any, ...]]]
    settled: int | None


class _Customer:
    """One customer's hidden behaviour and its invoice-by-invoice plan."""

    def __init__(self, index: int, profile: str, seed: int, cfg: SimulationConfig) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.cfg = cfg
        self.index = index
        self.customer_id = f"C{index:06d}"
        self.profile = profile
        self.terms_days: int = _weighted(rng, _TERMS)
        self.currency: str = _weighted(rng, _CURRENCIES)
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

    def plan(self) -> Iterator[_Invoice]:
        """Plan every invoice of the horizon, in issue order."""
        for issued in self.issue_times:
            yield self._plan_one(issued)

    def _plan_one(self, issued: int) -> _Invoice:
        rng, cfg, sep, end = self.rng, self.cfg, self.sep, self.end
        self.n_invoices += 1
        invoice_id = f"INV-{self.index:06d}-{self.n_invoices:05d}"
        due = issued + self.terms_days * DAY
        amount = max(100, round(self.median_cents * math.exp(rng.gauss(0.0, 0.6))))
        events: list[tuple[int, int, tuple[Any, ...]]] = [
            (issued, _ISSUED, (invoice_id, amount, due))]
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
            events.append((at, _DISPUTED, (invoice_id, rng.choice(_DISPUTE_REASONS))))
            credit_issued = rng.random() < 0.4 and open_ > 1
            events.append((resolved, _RESOLVED,
                           (invoice_id, "credit_issued" if credit_issued else "rejected")))
            pay_after = resolved + int(rng.uniform(2.0, 10.0) * DAY)
            if credit_issued:
                cents = max(1, min(open_ - 1, round(open_ * rng.uniform(0.1, 0.5))))
                events.append((resolved + HOUR, _ADJUSTED,
                               (invoice_id, cents, "dispute settlement")))
                open_ -= cents
                pay_after = max(pay_after, resolved + HOUR + sep)
        elif open_ > 1 and rng.random() < cfg.credit_note_rate:
            at = max(issued + int(rng.uniform(2.0, 15.0) * DAY), ready)
            cents = max(1, min(open_ - 1, round(open_ * rng.uniform(0.05, 0.3))))
            events.append((at, _ADJUSTED, (invoice_id, cents, rng.choice(_CREDIT_REASONS))))
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
        return _Invoice(invoice_id, issued, due, amount, events, settled)

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
            events.append((t, _PAYMENT, (payment_id, cents, () if unnamed else (invoice_id,))))
        if overpay:
            insort(self.credits, (last, overpay))
        return last

    def _record(self, invoice_id: str, due: int, settled: int | None) -> None:
        if settled is None:
            self.n_open_at_end += 1
        self.older_settled = max(self.older_settled, _INF if settled is None else settled)
        mark = due + 30 * DAY
        if mark < self.end and (settled is None or settled > mark) and (
                self.first_30dpd_at is None or mark < self.first_30dpd_at):
            self.first_30dpd_at = mark
            self.first_30dpd_invoice = invoice_id

    def truth(self) -> dict[str, Any]:
        """This customer's ground truth; complete once :meth:`plan` is exhausted."""
        return {
            "profile": self.profile,
            "deteriorates_at": None if self.deteriorates_at is None else _ts(self.deteriorates_at),
            "first_30dpd_at": None if self.first_30dpd_at is None else _ts(self.first_30dpd_at),
            "first_30dpd_invoice": self.first_30dpd_invoice,
            "terms_days": self.terms_days,
            "currency": self.currency,
            "median_amount": _money(self.median_cents),
            "invoices_per_month": round(self.per_month, 3),
            "pays_in_installments": self.installments,
            "invoices": self.n_invoices,
            "open_at_end": self.n_open_at_end,
        }

    def stream(self) -> Iterator[_Item]:
        """This customer's events in event-time order, planned one invoice at a time."""
        pending: list[_Item] = []
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


def _population(cfg: SimulationConfig) -> list[_Customer]:
    master = random.Random(cfg.seed)
    profiles = [p for p, n in zip(PROFILES, _allot(cfg.customers, cfg.profile_shares),
                                  strict=True) for _ in range(n)]
    master.shuffle(profiles)
    seeds = [master.getrandbits(64) for _ in range(cfg.customers)]
    return [_Customer(i + 1, profiles[i], seeds[i], cfg) for i in range(cfg.customers)]


def _truth(cfg: SimulationConfig, customers: list[_Customer]) -> dict[str, Any]:
    per = {c.customer_id: c.truth() for c in customers}
    counts = dict.fromkeys(PROFILES, 0)
    for c in customers:
        counts[c.profile] += 1
    return {
        "config": cfg.to_dict(),
        "horizon_start": _ts(cfg.start_ts),
        "horizon_end": _ts(cfg.end_ts),
        "profiles": counts,
        "customers_30dpd": sum(1 for c in customers if c.first_30dpd_at is not None),
        "customers": per,
    }


# --- public API --------------------------------------------------------------------------


def ground_truth(config: SimulationConfig) -> dict[str, Any]:
    """The hidden facts behind ``simulate(config)``, without generating the events.

    Parameters
    ----------
    config : SimulationConfig
        The same configuration given to :func:`simulate`.

    Returns
    -------
    dict
        ``config`` (as JSON), ``horizon_start``/``horizon_end`` (RFC 3339, end
        exclusive), ``profiles`` (counts), ``customers_30dpd`` (count) and
        ``customers``: per customer id, ``profile``, ``deteriorates_at`` (RFC 3339 or
        None; set for every deteriorating customer), ``first_30dpd_at`` (the first
        moment, before the horizon end, at which one of its invoices was 30 days past
        due with money still open on it, disputed or not; None if never),
        ``first_30dpd_invoice``, and descriptive fields (``terms_days``, ``currency``,
        ``median_amount``, ``invoices_per_month``, ``pays_in_installments``,
        ``invoices``, ``open_at_end``).
    """
    customers = _population(config)
    for c in customers:
        for _ in c.plan():
            pass
    return _truth(config, customers)


def simulate(config: SimulationConfig, stats: SimulationStats | None = None,
             ) -> Iterator[dict[str, Any]]:
    """Yield the simulated events, as wire-form dicts, in file order.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate.
    stats : SimulationStats, optional
        Filled in while the stream is consumed; ``stats.truth`` is set at the end.

    Yields
    ------
    dict
        Exactly what :func:`schemas.events.event_to_dict` produces for the event
        (``schema_version`` 1, ``type``, money as 2-decimal strings, times as RFC 3339
        UTC with ``Z``). Order: by event time, except ``disorder_rate`` of the events
        delivered up to ``max_disorder_hours`` late and ``duplicate_rate`` of them
        delivered twice (the copy within the hour after the original).

    Examples
    --------
    >>> from schemas.events import event_from_dict
    >>> events = list(simulate(SimulationConfig(customers=3, days=90, seed=1)))
    >>> events[0]["type"], events[0]["schema_version"], events[0]["customer_id"][:1]
    ('invoice.issued', 1, 'C')
    >>> all(event_from_dict(e).event_id == e["event_id"] for e in events)
    True
    >>> events == list(simulate(SimulationConfig(customers=3, days=90, seed=1)))
    True
    """
    customers = _population(config)
    merged = heapq.merge(*(c.stream() for c in customers))
    rng = random.Random(random.Random(config.seed).getrandbits(64) ^ 0x5EED_D15C)
    max_delay = int(config.max_disorder_hours * HOUR)
    disorder, duplicate = config.disorder_rate, config.duplicate_rate
    seed = config.seed
    st = stats if stats is not None else SimulationStats()
    by_type = [0] * len(_TYPE_NAMES)
    buffer: list[tuple[int, int, int, dict[str, Any]]] = []  # (file key, seq, time, event)
    seq = 0
    newest = -_INF

    def emit(t: int, event: dict[str, Any]) -> dict[str, Any]:
        nonlocal newest
        st.events += 1
        if t < newest:
            st.out_of_order += 1
        else:
            newest = t
        return event

    for counter, (t, index, _, kind, data) in enumerate(merged, 1):
        c = customers[index - 1]
        event = _render(kind, data, t, f"ev-{seed}-{counter}", c.customer_id, c.currency)
        by_type[kind] += 1
        key = t
        if max_delay > 0 and rng.random() < disorder:
            key = t + rng.randint(min(60, max_delay), max_delay)
            st.delayed += 1
        heapq.heappush(buffer, (key, seq, t, event))
        seq += 1
        if rng.random() < duplicate:
            room = max(0, min(HOUR, t + max_delay - key))
            copy = dict(event)
            if "invoice_ids" in copy:
                copy["invoice_ids"] = list(copy["invoice_ids"])
            heapq.heappush(buffer, (key + rng.randint(0, room), seq, t, copy))
            seq += 1
            st.duplicates += 1
            by_type[kind] += 1
        while buffer and buffer[0][0] <= t:
            item = heapq.heappop(buffer)
            yield emit(item[2], item[3])
    while buffer:
        item = heapq.heappop(buffer)
        yield emit(item[2], item[3])
    st.by_type = {name: n for name, n in zip(_TYPE_NAMES, by_type, strict=True) if n}
    st.invoices = sum(c.n_invoices for c in customers)
    st.truth = _truth(config, customers)


def _render(kind: int, data: tuple[Any, ...], t: int, event_id: str, customer_id: str,
            currency: str) -> dict[str, Any]:
    """The wire form of one internal event (field order as ``event_to_dict``)."""
    if kind == _ISSUED:
        invoice_id, cents, due = data
        return {"schema_version": 1, "type": "invoice.issued", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "amount": _money(cents),
                "currency": currency, "issued_at": _ts(t), "due_at": _ts(due),
                "terms": f"net-{(due - t) // DAY}"}
    if kind == _PAYMENT:
        payment_id, cents, invoice_ids = data
        out: dict[str, Any] = {"schema_version": 1, "type": "payment.received",
                               "event_id": event_id, "customer_id": customer_id,
                               "amount": _money(cents), "currency": currency,
                               "received_at": _ts(t)}
        if invoice_ids:
            out["invoice_ids"] = list(invoice_ids)
        out["payment_id"] = payment_id
        return out
    if kind == _ADJUSTED:
        invoice_id, cents, reason = data
        return {"schema_version": 1, "type": "invoice.adjusted", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "amount": _money(cents),
                "currency": currency, "adjusted_at": _ts(t), "kind": "credit_note",
                "reason": reason}
    if kind == _DISPUTED:
        invoice_id, reason = data
        return {"schema_version": 1, "type": "invoice.disputed", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "disputed_at": _ts(t),
                "reason": reason}
    invoice_id, outcome = data
    return {"schema_version": 1, "type": "invoice.dispute_resolved", "event_id": event_id,
            "customer_id": customer_id, "invoice_id": invoice_id, "resolved_at": _ts(t),
            "outcome": outcome}
