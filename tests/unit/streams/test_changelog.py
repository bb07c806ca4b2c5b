"""The customer-state table: Faust's Table for its changelog topic and recovery, with no
second copy of the states in its own store."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
from test_serialize import rich_state

from schemas.codec import dumps
from streams.changelog import (
    Commit,
    CommitLog,
    CustomerStateTable,
    PartitionStore,
    StateCodec,
    StateRecord,
    declare_table,
)
from streams.outbox import Outbox
from streams.settings import Settings


def changelog_event(partition: int, key: bytes, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, key=key, value=value))


def test_recovery_keeps_committed_states_once_and_the_table_store_stays_empty() -> None:
    app = faust.App("changelog-test", broker="kafka://127.0.0.1:9", store="memory://")
    log = CommitLog(app, Outbox(app))
    table = declare_table(app, Settings.from_env({}), log)
    assert isinstance(table, CustomerStateTable) and log.table is table
    assert log.changelog_topic == "changelog-test-customer_to_state-changelog"

    state = rich_state()
    store = PartitionStore(0, {})
    store[state.customer_id] = state
    commit = Commit("b1", 0, b"model", 5.0, {"inv:0": 3}, seq=1)
    records = store.commit_records(commit)
    events = [changelog_event(0, k, v) for k, v in records]

    async def recover() -> None:
        for event in events:
            await table.on_changelog_event(event)  # what Faust's recovery calls per record
        table.apply_changelog_batch(events)  # ...and per buffer of records

    asyncio.run(recover())
    assert log.states[0] == {state.customer_id: state}
    assert log.commits[0] == commit == log.durable[0]
    assert len(table.data) == 0  # no second copy in the table's store


def test_states_of_an_uncommitted_batch_are_not_applied() -> None:
    app = faust.App("changelog-test2", broker="kafka://127.0.0.1:9", store="memory://")
    log = CommitLog(app, Outbox(app))
    state = rich_state()
    value = StateCodec()._dumps(StateRecord("b9", state))
    asyncio.run(log.on_changelog(changelog_event(0, dumps(state.customer_id), value)))
    assert log.states == {} and 0 in log.pending
