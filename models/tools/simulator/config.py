"""What to simulate (:class:`SimulationConfig`) and what a run counted
(:class:`SimulationStats`), with the constants and text helpers the simulator shares.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY = 86_400
HOUR = 3_600
PROFILES = ("stable", "slow", "erratic", "deteriorating")
"""The hidden payment behaviours, in the order of :attr:`SimulationConfig.profile_shares`."""

INF = 1 << 62
TERMS = ((30, 0.5), (45, 0.3), (60, 0.2))
CURRENCIES = (("EUR", 0.8), ("USD", 0.12), ("GBP", 0.08))
DISPUTE_REASONS = ("price differs from the order", "goods not received", "quantity short",
                    "damaged goods", "duplicate billing")
CREDIT_REASONS = ("price correction", "returned goods", "volume rebate", "damaged goods")
_MIN_YEAR, _MAX_YEAR = 2000, 2100

# internal event kinds
ISSUED, PAYMENT, ADJUSTED, DISPUTED, RESOLVED = range(5)
TYPE_NAMES = ("invoice.issued", "payment.received", "invoice.adjusted", "invoice.disputed",
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
        out["start"] = rfc3339(self.start_ts)
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


# --- text of times and money --------------------------------------------------------------


def rfc3339(t: int) -> str:
    """Epoch seconds -> RFC 3339 UTC with Z (same text as ``schemas.fields.format_time``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def money_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
