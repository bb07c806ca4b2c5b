"""Event builders for the unit tests of the core: valid events with sensible defaults.

Times are given in days (floats) after :data:`T0`; amounts as Decimals, strings or ints.
Every builder gives a fresh, unique ``event_id`` unless one is passed.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.config import DAY, ScoringConfig
from models.model import OnlineModel
from models.processor import Processor
from models.serialize import state_to_dict
from models.state import CustomerState
from schemas.events import (
    Event,
    InvoiceAdjusted,
    InvoiceDisputed,
    InvoiceDisputeResolved,
    InvoiceIssued,
    PaymentReceived,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CUR = "EUR"
_ids = itertools.count(1)


def when(days: float) -> datetime:
    """``days`` after T0 as an aware datetime."""
    return T0 + timedelta(days=days)


def ts(days: float) -> float:
    """``days`` after T0 as event-time epoch seconds (what the core stores)."""
    return T0.timestamp() + days * DAY


def _eid(event_id: str | None, prefix: str) -> str:
    return event_id if event_id is not None else f"{prefix}-{next(_ids)}"


def invoice(cust: str, inv: str, amount: Any = 100, issued: float = 0.0, due: float = 30.0, *,
            event_id: str | None = None, currency: str = CUR) -> InvoiceIssued:
    return InvoiceIssued(event_id=_eid(event_id, "inv"), customer_id=cust, invoice_id=inv,
                         amount=Decimal(str(amount)), currency=currency,
                         issued_at=when(issued), due_at=when(due))


def payment(cust: str, amount: Any, at: float, *invoice_ids: str, event_id: str | None = None,
            currency: str = CUR) -> PaymentReceived:
    return PaymentReceived(event_id=_eid(event_id, "pay"), customer_id=cust,
                           amount=Decimal(str(amount)), currency=currency,
                           received_at=when(at), invoice_ids=tuple(invoice_ids))


def adjust(cust: str, inv: str, amount: Any, at: float, kind: str = "credit_note", *,
           event_id: str | None = None, currency: str = CUR) -> InvoiceAdjusted:
    return InvoiceAdjusted(event_id=_eid(event_id, "adj"), customer_id=cust, invoice_id=inv,
                           amount=Decimal(str(amount)), currency=currency,
                           adjusted_at=when(at), kind=kind)


def dispute(cust: str, inv: str, at: float, *, event_id: str | None = None) -> InvoiceDisputed:
    return InvoiceDisputed(event_id=_eid(event_id, "dsp"), customer_id=cust, invoice_id=inv,
                           disputed_at=when(at))


def resolve(cust: str, inv: str, at: float, *,
            event_id: str | None = None) -> InvoiceDisputeResolved:
    return InvoiceDisputeResolved(event_id=_eid(event_id, "res"), customer_id=cust,
                                  invoice_id=inv, resolved_at=when(at))


def units(amount: Any) -> int:
    """Contract amount -> core money units (1/10,000)."""
    return int(Decimal(str(amount)) * 10_000)


def processor(cfg: ScoringConfig | None = None) -> Processor:
    cfg = cfg or ScoringConfig()
    return Processor(cfg, OnlineModel(prior=cfg.prior_late_rate))


def run(events: list[Event], proc: Processor | None = None,
        state: CustomerState | None = None) -> tuple[CustomerState | None, list[Any]]:
    """Apply events in the given order with one processor; returns the state and the steps."""
    proc = proc or processor()
    steps = []
    for event in events:
        state, step = proc.apply(state, event)
        steps.append(step)
    return state, steps


def snapshot(state: CustomerState) -> dict[str, Any]:
    """A deep copy of the serialised state (``state_to_dict`` shares lists with the state)."""
    return copy.deepcopy(state_to_dict(state))


# --- hypothesis strategies ----------------------------------------------------------------

try:  # hypothesis is a test extra; the builders above do not need it
    from hypothesis import strategies as hs
except ImportError:  # pragma: no cover
    hs = None  # type: ignore[assignment]

POOL = ("i0", "i1", "i2", "i3", "i4", "i5")


def _amount(draw: Any) -> Decimal:
    return Decimal(draw(hs.integers(min_value=1, max_value=50_000))).scaleb(-2)


if hs is not None:

    @hs.composite
    def customer_events(draw: Any, cust: str = "c1", max_size: int = 25,
                        currencies: tuple[str, ...] = (CUR, CUR, CUR, "USD")) -> list[Event]:
        """A random sequence of valid events for one customer (not necessarily in time order).

        Invoice ids come from a small pool so payments, adjustments and disputes hit real
        invoices, re-issues happen and payments sometimes arrive before their invoice.
        """
        n = draw(hs.integers(min_value=1, max_value=max_size))
        out: list[Event] = []
        for i in range(n):
            kind = draw(hs.sampled_from(("issue", "issue", "pay", "pay", "pay", "adjust",
                                         "dispute", "resolve")))
            at = draw(hs.integers(min_value=0, max_value=150 * 24)) / 24  # whole hours
            inv = draw(hs.sampled_from(POOL))
            eid = f"{cust}-e{i}"
            currency = draw(hs.sampled_from(currencies))
            if kind == "issue":
                terms = draw(hs.integers(min_value=0, max_value=60))
                out.append(invoice(cust, inv, _amount(draw), at, at + terms, event_id=eid,
                                   currency=currency))
            elif kind == "pay":
                ids = draw(hs.lists(hs.sampled_from(POOL), max_size=3, unique=True))
                out.append(payment(cust, _amount(draw), at, *ids, event_id=eid,
                                   currency=currency))
            elif kind == "adjust":
                kind_ = draw(hs.sampled_from(("credit_note", "write_off")))
                out.append(adjust(cust, inv, _amount(draw), at, kind_, event_id=eid,
                                  currency=currency))
            elif kind == "dispute":
                out.append(dispute(cust, inv, at, event_id=eid))
            else:
                out.append(resolve(cust, inv, at, event_id=eid))
        return out
