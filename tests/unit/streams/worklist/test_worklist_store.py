"""The worklist's decoding, migrations and batched writes (SQLite file; PostgreSQL is
covered by the integration tests with a real server)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from schemas.codec import DecodeError, dumps
from schemas.contracts import load_schema
from streams.worklist import queries
from streams.worklist.records import alert_row, score_row
from streams.worklist.schema import (
    LATEST_VERSION,
    SchemaError,
    alerts,
    latest_scores,
    migrate,
    schema_migrations,
    score_history,
)
from streams.worklist.store import Batch, apply_batch, open_store, stored_offsets

SCORE = load_schema("score")
ALERT = load_schema("alert")


def score(cid: str, event: str, at: str, priority: str, overdue: str = "0.00",
          p_late: float = 0.5) -> dict[str, Any]:
    doc = copy.deepcopy(SCORE["examples"][0])
    doc.update(customer_id=cid, event_id=event, scored_at=at, priority=priority,
               overdue_amount=overdue, p_late=p_late)
    return doc


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'wl.db'}")


@pytest.mark.parametrize("example", SCORE["examples"])
def test_every_published_score_example_decodes(example: dict[str, Any]) -> None:
    row = score_row(dumps(example))
    assert row["customer_id"] == example["customer_id"]


@pytest.mark.parametrize("bad", SCORE["x-invalid-examples"], ids=lambda b: b["reason"])
def test_every_published_invalid_score_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        score_row(dumps(bad["value"]))


@pytest.mark.parametrize("bad", ALERT["x-invalid-examples"], ids=lambda b: b["reason"])
def test_every_published_invalid_alert_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        alert_row(dumps(bad["value"]))


def test_decode_errors_name_the_field_not_the_value() -> None:
    doc = score("secret-customer", "e1", "2025-01-01T00:00:00Z", "1.00")
    doc["band"] = "secret-band-value"
    with pytest.raises(DecodeError) as err:
        score_row(dumps(doc))
    assert "band" in str(err.value) and "secret" not in str(err.value)
    for raw in (None, b"", b"[]", b"\xff", b'{"schema_version": 1}'):
        with pytest.raises(DecodeError):
            score_row(raw)


def test_migrations_are_recorded_once_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate(engine) == 0  # already current
    with engine.begin() as conn:
        assert conn.execute(select(func.max(schema_migrations.c.version))).scalar() == LATEST_VERSION
        conn.execute(schema_migrations.insert().values(version=LATEST_VERSION + 1,
                                                       description="future", applied_at="x"))
    with pytest.raises(SchemaError, match="newer"):
        migrate(engine)


def _batch(docs: list[dict[str, Any]], alert_docs: list[dict[str, Any]], start: int) -> Batch:
    b = Batch(scores=[score_row(dumps(d)) for d in docs],
              alerts=[alert_row(dumps(a)) for a in alert_docs])
    b.next_offsets[("scores", 0)] = start + len(docs)
    b.malformed[("scores", 0)] = 1
    return b


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_applying_a_batch_twice_changes_nothing_but_the_offsets(engine: Engine) -> None:
    docs = [score("A", "e1", "2025-01-01T00:00:00Z", "10.00"),
            score("B", "e2", "2025-01-02T00:00:00Z", "30.00"),
            score("A", "e3", "2025-01-03T00:00:00Z", "20.00")]
    alert = ALERT["examples"][0]
    apply_batch(engine, _batch(docs, [alert, alert], 0))
    first = queries.worklist(engine, queries.WorklistQuery())
    apply_batch(engine, _batch(docs, [alert], 3))  # redelivered
    assert queries.worklist(engine, queries.WorklistQuery()) == first
    assert [r["customer_id"] for r in first["items"]] == ["B", "A"]
    assert first["items"][1]["event_id"] == "e3"  # the last record wins, as in compaction
    assert _count(engine, score_history) == 3 and _count(engine, alerts) == 1
    assert stored_offsets(engine, ["scores"]) == {("scores", 0): 6}
    assert queries.view_stats(engine)["malformed"] == 2


def test_oldest_days_past_due_only_when_the_score_states_it(engine: Engine) -> None:
    stated = score("A", "e1", "2025-01-05T00:00:00Z", "1.00", overdue="5.00")
    stated["reasons"] = [{"code": "max_days_past_due", "weight": 0.4,
                          "text": "5.00 EUR overdue, oldest 12 days past due"}]
    unstated = score("B", "e2", "2025-01-05T00:00:00Z", "2.00", overdue="5.00")
    apply_batch(engine, _batch([stated, unstated], [], 0))
    rows = queries.worklist(engine, queries.WorklistQuery(sort="-overdue"))["items"]
    assert {r["customer_id"]: r["oldest_days_past_due"] for r in rows} == {"A": 12, "B": None}


def test_cursor_paging_visits_every_row_once_in_order(engine: Engine) -> None:
    docs = [score(f"C{i:03d}", f"e{i}", "2025-01-01T00:00:00Z", f"{i % 7}.00", p_late=(i % 5) / 5)
            for i in range(53)]
    apply_batch(engine, _batch(docs, [], 0))
    for sort in ("-priority", "priority", "-p_late", "customer_id", "-customer_id", "-overdue"):
        seen: list[str] = []
        cursor = None
        while True:
            page = queries.worklist(engine, queries.WorklistQuery(sort=sort, limit=10, cursor=cursor))
            seen += [r["customer_id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        everything = queries.worklist(engine, queries.WorklistQuery(sort=sort, limit=500))["items"]
        assert seen == [r["customer_id"] for r in everything] and len(set(seen)) == 53, sort


def test_filters(engine: Engine) -> None:
    docs = [score("ab_1", "e1", "2025-01-01T00:00:00Z", "5.00"),
            score("abX1", "e2", "2025-01-01T00:00:00Z", "50.00"),
            score("zz", "e3", "2025-01-01T00:00:00Z", "500.00")]
    docs[2]["band"], docs[2]["low_confidence"] = "critical", True
    apply_batch(engine, _batch(docs, [], 0))

    def ids(**kw: Any) -> list[str]:
        return [r["customer_id"] for r in queries.worklist(engine, queries.WorklistQuery(**kw))["items"]]

    assert ids(q="b_") == ["ab_1"]  # LIKE wildcards are matched literally
    assert ids(band=("critical",)) == ["zz"]
    assert ids(low_confidence=False) == ["abX1", "ab_1"]
    assert ids(min_priority=50.0) == ["zz", "abX1"]
    assert ids(currency="USD") == []
    with pytest.raises(queries.QueryError, match="cursor"):
        queries.worklist(engine, queries.WorklistQuery(cursor="!!"))
    assert _count(engine, latest_scores) == 3


@pytest.mark.parametrize("name", ["config", "records", "pages", "queries", "store"])
def test_worklist_docstring_examples_hold(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"streams.worklist.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0


def test_timestamps_from_other_writers_are_converted_and_impossible_dates_refused() -> None:
    from streams.worklist.records import stored_from_wire

    assert stored_from_wire("2025-03-01T10:00:00.123456Z", "t") == "2025-03-01T10:00:00.123456Z"
    assert stored_from_wire("2025-03-01T00:30:00-01:00", "t") == "2025-03-01T01:30:00.000000Z"
    for bad in ("2025-02-30T00:00:00Z", "2025-03-01T00:00:00", "yesterday", 5):
        with pytest.raises(DecodeError):
            stored_from_wire(bad, "t")
