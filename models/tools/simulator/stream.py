"""The simulated stream: customers merged by event time, with delivery noise.

Everything is deterministic given :attr:`SimulationConfig.seed`: one
:class:`random.Random` seeded from it derives a generator per customer and one for
the delivery noise; no global random state, no wall clock.

The stream is generated lazily: every customer plans one invoice at a time and
keeps only the future events of its open invoices, and customers are merged by
event time with a heap, so memory grows with the number of customers, not with
the length of the horizon.

:func:`ground_truth` reports, per customer, its hidden profile, when a
deteriorating customer changed (``deteriorates_at``) and the first moment one of
its invoices was 30 or more days past due while money was still open on it
(``first_30dpd_at``).

The package docstring (:mod:`models.tools.simulator`) says what is simulated.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

from models.tools.simulator.config import (
    ADJUSTED,
    DAY,
    DISPUTED,
    HOUR,
    INF,
    ISSUED,
    PAYMENT,
    PROFILES,
    TYPE_NAMES,
    SimulationConfig,
    SimulationStats,
    money_text,
    rfc3339,
)
from models.tools.simulator.customer import Customer

__all__ = ["ground_truth", "simulate"]


def _allot(n: int, shares: tuple[float, ...]) -> list[int]:
    """Split ``n`` into counts proportional to ``shares`` (largest remainder)."""
    total = sum(shares)
    raw = [n * s / total for s in shares]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _population(cfg: SimulationConfig) -> list[Customer]:
    master = random.Random(cfg.seed)
    profiles = [p for p, n in zip(PROFILES, _allot(cfg.customers, cfg.profile_shares),
                                  strict=True) for _ in range(n)]
    master.shuffle(profiles)
    seeds = [master.getrandbits(64) for _ in range(cfg.customers)]
    return [Customer(i + 1, profiles[i], seeds[i], cfg) for i in range(cfg.customers)]


def _truth(cfg: SimulationConfig, customers: list[Customer]) -> dict[str, Any]:
    per = {c.customer_id: c.truth() for c in customers}
    counts = dict.fromkeys(PROFILES, 0)
    for c in customers:
        counts[c.profile] += 1
    return {
        "config": cfg.to_dict(),
        "horizon_start": rfc3339(cfg.start_ts),
        "horizon_end": rfc3339(cfg.end_ts),
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
    by_type = [0] * len(TYPE_NAMES)
    buffer: list[tuple[int, int, int, dict[str, Any]]] = []  # (file key, seq, time, event)
    seq = 0
    newest = -INF

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
    st.by_type = {name: n for name, n in zip(TYPE_NAMES, by_type, strict=True) if n}
    st.invoices = sum(c.n_invoices for c in customers)
    st.truth = _truth(config, customers)


def _render(kind: int, data: tuple[Any, ...], t: int, event_id: str, customer_id: str,
            currency: str) -> dict[str, Any]:
    """The wire form of one internal event (field order as ``event_to_dict``)."""
    if kind == ISSUED:
        invoice_id, cents, due = data
        return {"schema_version": 1, "type": "invoice.issued", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "amount": money_text(cents),
                "currency": currency, "issued_at": rfc3339(t), "due_at": rfc3339(due),
                "terms": f"net-{(due - t) // DAY}"}
    if kind == PAYMENT:
        payment_id, cents, invoice_ids = data
        out: dict[str, Any] = {"schema_version": 1, "type": "payment.received",
                               "event_id": event_id, "customer_id": customer_id,
                               "amount": money_text(cents), "currency": currency,
                               "received_at": rfc3339(t)}
        if invoice_ids:
            out["invoice_ids"] = list(invoice_ids)
        out["payment_id"] = payment_id
        return out
    if kind == ADJUSTED:
        invoice_id, cents, reason = data
        return {"schema_version": 1, "type": "invoice.adjusted", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "amount": money_text(cents),
                "currency": currency, "adjusted_at": rfc3339(t), "kind": "credit_note",
                "reason": reason}
    if kind == DISPUTED:
        invoice_id, reason = data
        return {"schema_version": 1, "type": "invoice.disputed", "event_id": event_id,
                "customer_id": customer_id, "invoice_id": invoice_id, "disputed_at": rfc3339(t),
                "reason": reason}
    invoice_id, outcome = data
    return {"schema_version": 1, "type": "invoice.dispute_resolved", "event_id": event_id,
            "customer_id": customer_id, "invoice_id": invoice_id, "resolved_at": rfc3339(t),
            "outcome": outcome}
