"""Events and streams for the backtest's tests: an invoice, its payment, a simulated stream."""

from __future__ import annotations

import models.processor as processor_module
from models.config import DAY, ScoringConfig
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import Event, InvoiceIssued, PaymentReceived, event_from_dict

CFG = ScoringConfig()
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def iso(day: float) -> str:
    return processor_module.iso(T0 + day * DAY)


def issued(inv: str, day: float, due_in: float = 30, amount: str = "1000",
           customer: str = "c1") -> InvoiceIssued:
    e = event_from_dict({"schema_version": 1, "type": "invoice.issued", "event_id": f"i-{inv}",
                         "customer_id": customer, "invoice_id": inv, "amount": amount,
                         "currency": "EUR", "issued_at": iso(day), "due_at": iso(day + due_in)})
    assert isinstance(e, InvoiceIssued)
    return e


def paid(inv: str, day: float, amount: str = "1000", customer: str = "c1") -> PaymentReceived:
    e = event_from_dict({"schema_version": 1, "type": "payment.received",
                         "event_id": f"p-{inv}-{day}", "customer_id": customer,
                         "invoice_id": inv, "amount": amount, "currency": "EUR",
                         "received_at": iso(day)})
    assert isinstance(e, PaymentReceived)
    return e


def sim_events(customers: int = 30, days: int = 150, seed: int = 4) -> list[Event]:
    from schemas.events import decode_event

    cfg = SimulationConfig(customers=customers, days=days, seed=seed)
    return [decode_event(dumps(e)) for e in simulate(cfg)]
