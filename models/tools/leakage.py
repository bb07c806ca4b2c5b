"""The leakage guard of the backtest: every snapshot the model learned from must equal the
features recomputed from the customer's state as of the invoice's issue.
"""

from __future__ import annotations

import copy
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from models import transitions as tr
from models.config import DAY, ScoringConfig
from models.engine import TYPE_ORDER, Engine
from models.features import FEATURE_NAMES, features
from models.model import OnlineModel
from models.money import to_units
from models.processor import Step
from models.state import CustomerState, id_hash
from models.tools.backtest import Key
from schemas.events import Event, InvoiceIssued


@dataclass(slots=True)
class SnapshotAudit:
    """Snapshots checked and those that differ from the features as of issue."""

    checked: int = 0
    mismatches: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def features_as_of_issue(before: CustomerState | None, event: InvoiceIssued,
                         cfg: ScoringConfig) -> array | None:  # type: ignore[type-arg]
    """The features an invoice must carry, from a copy of its customer's state before issue.

    Time is first brought to the issue (as the processor does), then the reference
    :func:`models.features.features` is applied: nothing after issue can reach it.
    None if the state would refuse the invoice.
    """
    s = copy.deepcopy(before) if before is not None else CustomerState(event.customer_id)
    at = event.at.timestamp()
    tr.advance(s, at, cfg)
    try:
        tr.touch(s, at, event.currency)
    except tr.Rejected:
        return None
    return features(s, at, cfg, to_units(event.amount), (event.due_at.timestamp() - at) / DAY)


def _event_order(event: Event) -> tuple[float, int, str]:
    return event.at.timestamp(), TYPE_ORDER[event.type], event.event_id


def _differing(a: array, b: array) -> list[str]:  # type: ignore[type-arg]
    return [name for name, u, v in zip(FEATURE_NAMES, a, b, strict=True)
            if not (u == v or (math.isnan(u) and math.isnan(v)))]


def audit_snapshots(events: Iterable[Event], cfg: ScoringConfig, *,
                    model: OnlineModel | None = None, every: int = 1) -> SnapshotAudit:
    """Check that every learned (or still held) snapshot is the invoice's features at issue.

    The events run through a fresh engine in event-time order. Before an invoice is
    issued, its features are recomputed from a copy of the customer's state; after the
    run, each label's ``x`` (copied when it resolved, as learned) and each open
    invoice's ``x`` must equal them. A snapshot that changed after issue, or a feature
    function reading anything but the state at issue, shows up here. ``every`` > 1
    audits a stable sample of invoices (1 in ``every``).
    """
    model = model or OnlineModel(prior=cfg.prior_late_rate)
    store: dict[str, CustomerState] = {}
    engine = Engine(cfg, model, store, sources=("audit",))
    expected: dict[Key, array] = {}  # type: ignore[type-arg]
    stored: dict[Key, array] = {}  # type: ignore[type-arg]

    def take(steps: list[Step]) -> None:
        for step in steps:
            for label in step.labels:
                stored[(step.customer_id, label.invoice_id)] = array("d", label.x)

    for event in sorted(events, key=_event_order):
        if isinstance(event, InvoiceIssued) and id_hash(event.invoice_id) % every == 0:
            key = (event.customer_id, event.invoice_id)
            if key not in expected:
                x = features_as_of_issue(store.get(event.customer_id), event, cfg)
                if x is not None:
                    expected[key] = x
        take(engine.submit(event, "audit"))
    take(engine.flush())
    for cid, s in store.items():
        for inv in s.invoices.values():
            snapshot = inv.snapshot
            if snapshot is not None:
                stored[(cid, inv.invoice_id)] = snapshot
    audit = SnapshotAudit()
    for key, want in expected.items():
        got = stored.get(key)
        if got is None:
            continue
        audit.checked += 1
        diff = _differing(want, got)
        if diff:
            audit.mismatches.append((*key, diff))
    return audit
