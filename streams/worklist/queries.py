"""The read side of the worklist database: what the API and the pages show.

Paging is by keyset cursor (the last row's sort value and customer id), so a page
costs the same at row 10 and row 90,000 and a live-changing list never repeats or skips
a row because of an offset shift.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select

from schemas.codec import dumps, loads
from streams.worklist.records import wire_ts
from streams.worklist.schema import alerts, applied_offsets, latest_scores, score_history

SORTS: dict[str, Any] = {
    "priority": latest_scores.c.priority_value,
    "p_late": latest_scores.c.p_late,
    "overdue": latest_scores.c.overdue_value,
    "customer_id": latest_scores.c.customer_id,
}
"""Sort keys of the worklist; prefix ``-`` for descending (default ``-priority``)."""


class QueryError(ValueError):
    """A bad query parameter; the message is one line naming it (becomes a 400)."""


@dataclass(frozen=True)
class WorklistQuery:
    """Filters, order and page of the worklist (all optional)."""

    band: tuple[str, ...] = ()
    currency: str | None = None
    treatment: tuple[str, ...] = ()
    low_confidence: bool | None = None
    min_priority: float | None = None
    q: str | None = None
    sort: str = "-priority"
    limit: int = 50
    cursor: str | None = None


def encode_cursor(value: Any, key: str) -> str:
    return base64.urlsafe_b64encode(dumps([value, key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        value, key = loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(key, str) or not isinstance(value, int | float | str):
            raise ValueError
        return value, key
    except (ValueError, TypeError, binascii.Error):
        raise QueryError("cursor: not a cursor this API returned") from None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def score_out(row: Any) -> dict[str, Any]:
    """A ``latest_scores`` row as the API shows it (the score record plus days past due)."""
    m = row._mapping
    return {
        "customer_id": m["customer_id"], "scored_at": wire_ts(m["scored_at"]),
        "event_id": m["event_id"], "p_late": m["p_late"], "band": m["band"],
        "priority": m["priority"], "open_amount": m["open_amount"],
        "overdue_amount": m["overdue_amount"], "currency": m["currency"],
        "open_invoices": m["open_invoices"], "low_confidence": bool(m["low_confidence"]),
        "treatment": m["treatment"], "model_version": m["model_version"],
        "labels_seen": m["labels_seen"], "reasons": loads(m["reasons"]),
        "oldest_days_past_due": m["oldest_days_past_due"],
    }


def alert_out(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {**{k: m[k] for k in ("alert_id", "kind", "customer_id", "band", "p_late",
                                 "previous_p_late", "priority", "treatment", "message",
                                 "invoice_id")},
            "raised_at": wire_ts(m["raised_at"]), "reasons": loads(m["reasons"])}


def worklist(engine: Engine, query: WorklistQuery) -> dict[str, Any]:
    """One page of the worklist: ``{"items": [...], "next_cursor": str | None}``."""
    descending = query.sort.startswith("-")
    name = query.sort.lstrip("-")
    if name not in SORTS:
        raise QueryError(f"sort: unknown key {name!r}; use one of {', '.join(SORTS)} "
                         "(prefix - for descending)")
    key = SORTS[name]
    cid = latest_scores.c.customer_id
    where: list[ColumnElement[bool]] = []
    if query.band:
        where.append(latest_scores.c.band.in_(query.band))
    if query.treatment:
        where.append(latest_scores.c.treatment.in_(query.treatment))
    if query.currency:
        where.append(latest_scores.c.currency == query.currency)
    if query.low_confidence is not None:
        where.append(latest_scores.c.low_confidence == query.low_confidence)
    if query.min_priority is not None:
        where.append(latest_scores.c.priority_value >= query.min_priority)
    if query.q:
        where.append(cid.like(_like(query.q), escape="\\"))
    if query.cursor:
        value, last = decode_cursor(query.cursor)
        if name == "customer_id":
            where.append(cid < last if descending else cid > last)
        else:
            beyond = key < value if descending else key > value
            where.append(or_(beyond, and_(key == value, cid > last)))
    order = [key.desc() if descending else key.asc()]
    if name != "customer_id":
        order.append(cid.asc())
    stmt = select(latest_scores).where(*where).order_by(*order).limit(query.limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).fetchall()
    items = [score_out(r) for r in rows[:query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last_row = rows[query.limit - 1]._mapping
        value = last_row[{"priority": "priority_value", "overdue": "overdue_value"}.get(name, name)]
        next_cursor = encode_cursor(value, last_row["customer_id"])
    return {"items": items, "next_cursor": next_cursor}


def customer(engine: Engine, customer_id: str, history_limit: int = 5000) -> dict[str, Any] | None:
    """Latest score, score history (oldest first) and alerts of one customer, or None."""
    with engine.connect() as conn:
        latest = conn.execute(select(latest_scores)
                              .where(latest_scores.c.customer_id == customer_id)).first()
        if latest is None:
            return None
        history = conn.execute(
            select(score_history.c.scored_at, score_history.c.event_id, score_history.c.p_late,
                   score_history.c.band, score_history.c.priority)
            .where(score_history.c.customer_id == customer_id)
            .order_by(score_history.c.scored_at.desc(), score_history.c.event_id.desc())
            .limit(history_limit)).fetchall()
        found = conn.execute(select(alerts).where(alerts.c.customer_id == customer_id)
                             .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id)
                             .limit(1000)).fetchall()
    return {
        "latest": score_out(latest),
        "history": [{"scored_at": wire_ts(h.scored_at), "event_id": h.event_id,
                     "p_late": h.p_late, "band": h.band, "priority": h.priority}
                    for h in reversed(history)],
        "alerts": [alert_out(a) for a in found],
    }


def recent_alerts(engine: Engine, kind: tuple[str, ...] = (), limit: int = 50,
                  cursor: str | None = None) -> dict[str, Any]:
    """Alerts, newest event time first, optionally of some kinds; keyset-paged."""
    where: list[ColumnElement[bool]] = []
    if kind:
        where.append(alerts.c.kind.in_(kind))
    if cursor:
        value, last = decode_cursor(cursor)
        where.append(or_(alerts.c.raised_at < value,
                         and_(alerts.c.raised_at == value, alerts.c.alert_id > last)))
    stmt = (select(alerts).where(*where)
            .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id).limit(limit + 1))
    with engine.connect() as conn:
        rows = conn.execute(stmt).fetchall()
    items = [alert_out(r) for r in rows[:limit]]
    last_row = rows[limit - 1] if len(rows) > limit else None
    return {"items": items, "next_cursor": encode_cursor(last_row.raised_at, last_row.alert_id)
            if last_row is not None else None}


def view_stats(engine: Engine) -> dict[str, Any]:
    """Rows held and offsets applied, for the health endpoint."""
    with engine.connect() as conn:
        customers = conn.execute(select(func.count()).select_from(latest_scores)).scalar_one()
        alert_count = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
        offsets = conn.execute(select(applied_offsets)).fetchall()
    return {"customers": customers, "alerts": alert_count,
            "applied": {f"{o.topic}:{o.partition}": o.next_offset for o in offsets},
            "malformed": sum(o.malformed for o in offsets)}
