"""The customer states' changelog and commit log: records, codec, recovery, commit writing.

**Faust's Table or our own changelog topic?** The state uses Faust's Table
``customer_to_state``, for what a Table gives and would be hard to redo safely:

- the changelog topic (``<app_id>-customer_to_state-changelog``, one partition per input
  partition, declared by Faust);
- recovery on assignment and standby replicas: Faust reads the changelog partitions of the
  new assignment (active and standby) and hands every record to
  :meth:`CommitLog.on_changelog` (the table's ``on_changelog_event``);
  ``app.on_rebalance_complete`` says when it is done;
- the rebalance protocol: Faust's assignor keeps a changelog partition with its input
  partition (and places standbys).

Not used:

- the Table's per-key ``table[key] = value`` path (one changelog send per assignment,
  wrapped in Faust's channel and future objects): states are written per batch, coalesced
  per customer and closed by a :class:`Commit` record, straight to the producer
  (:meth:`CommitLog.commit_all`), for throughput and for crash consistency (recovery applies
  a batch only once it read its commit record);
- the Table's own store: Faust's recovery would also apply every changelog record to it,
  keeping a second copy of every state (as a JSON document) beside the decoded states.
  :class:`CustomerStateTable` skips that; the committed states live in
  :attr:`CommitLog.states`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.serializers import codecs

from models.engine import Engine
from models.serialize import (
    PACKED_VERSION,
    dumps_packed,
    state_from_dict,
    state_from_record,
    state_to_dict,
)
from models.state import CustomerState
from schemas.codec import dumps, loads
from streams.app import stop_worker
from streams.outbox import DeliveryFailed, Outbox, ensure_delivered
from streams.settings import Settings

log = logging.getLogger("arscore.worker")
TABLE_NAME = "customer_to_state"


@dataclass(slots=True)
class StateRecord:
    """A customer's state as written by one batch (``batch`` = that batch's unique id)."""

    batch: str
    state: CustomerState


@dataclass(slots=True)
class Commit:
    """The last record of a batch on a changelog partition: the batch is complete.

    Carries what must move with the customer states to keep them consistent: the
    partition's model, the engine's stream time and the resume offsets (per input source,
    the lowest offset not yet fully handled).
    """

    batch: str
    partition: int
    model: bytes
    stream_time: float
    resume: dict[str, int]
    seq: int = 0
    """Commit number on this partition, continued by each new owner from the one it recovered."""
    generation: int = 0
    """Consumer-group generation the writer owned the partition in (breaks ``seq`` ties)."""

    @property
    def order(self) -> tuple[int, int]:
        return self.seq, self.generation


class StateCodec(codecs.Codec):
    """Changelog values travel as the project's JSON: state records and commit records."""

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, Commit):
            return dumps({"commit": obj.batch, "partition": obj.partition, "seq": obj.seq,
                          "generation": obj.generation,
                          "model": base64.b64encode(obj.model).decode(),
                          "stream_time": obj.stream_time if math.isfinite(obj.stream_time)
                          else None, "resume": obj.resume})
        if isinstance(obj, StateRecord):
            return dumps_packed({"batch": obj.batch, "v": PACKED_VERSION, "state": obj.state})
        return dumps(state_to_dict(obj))

    def _loads(self, s: bytes) -> Any:
        doc = loads(s, max_bytes=None)
        if "commit" in doc:
            st = doc.get("stream_time")
            return Commit(doc["commit"], doc["partition"], base64.b64decode(doc["model"]),
                          -math.inf if st is None else float(st),
                          doc["resume"], doc.get("seq", 0), doc.get("generation", 0))
        if "batch" in doc:  # a packed shape, tagged with its version; earlier: the readable one
            return StateRecord(doc["batch"], state_from_record(doc["state"], doc.get("v")))
        return state_from_dict(doc)


class PartitionStore(MutableMapping[str, CustomerState]):
    """One partition's customer states; its writes reach that partition's changelog at commit.

    Writes are coalesced: a customer updated many times between two state commits is
    changelogged once. :meth:`commit_records` gives the changed states, then the
    :class:`Commit` record that closes them, all for the same changelog partition (so in
    order). Recovery applies states only once it has read their commit record: the states,
    the model and the resume offsets always come back as of the same commit, whatever
    moment a crash (kill -9) cut the producer off.
    """

    def __init__(self, partition: int, data: dict[str, CustomerState]) -> None:
        self.partition, self.data = partition, data
        self.dirty: dict[str, CustomerState] = {}

    def __getitem__(self, key: str) -> CustomerState:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: CustomerState) -> None:
        self.data[key] = value
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("customer state is never deleted by the engine")

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def commit_records(self, record: Commit) -> list[tuple[bytes, bytes]]:
        """The dirty states then the commit record, as changelog (key, value) pairs.

        Values are serialised here, not when the producer gets round to them: a state
        changed by the next batch must not reach the changelog under this batch's id.
        """
        codec = StateCodec()
        out = [(dumps(key), codec._dumps(StateRecord(record.batch, value)))
               for key, value in self.dirty.items()]
        self.dirty.clear()
        out.append((dumps(self.partition), codec._dumps(record)))
        return out


class CustomerStateTable(faust.Table):  # type: ignore[misc]
    """Faust's Table for its changelog topic, recovery and standbys; its store stays empty.

    Recovery hands every changelog record to ``on_changelog_event``
    (:meth:`CommitLog.on_changelog` keeps the committed states); applying the records to
    the table's store as well would only keep a second copy of every state.
    """

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        return None


def declare_table(app: faust.App, s: Settings, log_: CommitLog) -> Any:
    """The ``customer_to_state`` table whose changelog recovery feeds ``log_``."""
    table = app.tables.add(CustomerStateTable(  # what ``app.Table`` does, with this class
        app, name=TABLE_NAME, default=None, beacon=app.tables.beacon, partitions=s.partitions,
        on_changelog_event=log_.on_changelog))
    log_.table = table
    # No serializers to set: records are written as bytes (:meth:`CommitLog.commit_all`) and
    # read from the raw bytes (:meth:`CommitLog.on_changelog`). The changelog topic keeps
    # Faust's default (JSON), which only decodes ``event.value``, unused here. (Before the
    # split the table was given a value serializer "arscore_state" that nothing read: the
    # topic copies its serializers when the table is made, and the store never serializes.)
    return table


Engines = Mapping[int, tuple[Engine, PartitionStore]]


class CommitLog:
    """Recovery of committed batches, and the writing of new ones, for every partition."""

    def __init__(self, app: Any, outbox: Outbox) -> None:
        self.app = app
        self.table: Any = None
        """The :class:`CustomerStateTable` (set by :func:`declare_table`)."""
        self.outbox = outbox
        """Scores, alerts and dead letters: a commit waits until they are acknowledged."""
        self.states: dict[int, dict[str, CustomerState]] = {}
        """Committed customer states per partition (active and standby)."""
        self.commits: dict[int, Commit] = {}
        self.durable: dict[int, Commit] = {}
        """Commit records the broker has acknowledged: Faust may commit offsets up to these."""
        self.pending: dict[int, dict[str, dict[str, CustomerState]]] = {}
        """Per partition and batch id: states read from the changelog, awaiting their commit."""
        self.uncommitted: set[int] = set()
        """Partitions with batches applied since their last commit record."""
        self.committed_at = time.monotonic()
        self.changelog_out = Outbox(app)
        """State and commit records, written by :meth:`_write_commit`."""
        self.committing: asyncio.Future[None] | None = None
        """The commit being written, if any (one at a time: changelog order is commit order)."""

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()  # type: ignore[no-any-return]

    def resume(self, tp: Any, *, durable: bool = False) -> int | None:
        """The committed (or durable) resume offset of input partition ``tp``, if any."""
        commit = (self.durable if durable else self.commits).get(tp.partition)
        return commit.resume.get(f"{tp.topic}:{tp.partition}") if commit is not None else None

    # --- recovery ---------------------------------------------------------------------

    async def on_changelog(self, event: Any) -> None:
        """Recovery and standby reading of the changelog: apply committed batches only."""
        p = event.message.partition
        # Decode the raw bytes ourselves: Faust's recovery decodes changelog values with the
        # topic's serializer as it was when the topic object was made (plain JSON), so
        # ``event.value`` is a dict here and a type check on it would skip every record.
        value = StateCodec()._loads(event.message.value)
        if isinstance(value, StateRecord):
            batches = self.pending.setdefault(p, {})
            batches.setdefault(value.batch, {})[value.state.customer_id] = value.state
        elif isinstance(value, Commit):
            self._apply_commit(p, value)

    def _apply_commit(self, p: int, commit: Commit) -> None:
        """A batch is complete: apply its states, unless a newer commit was already applied.

        Records of different writers can interleave on one changelog partition: a worker
        that lost the partition may still flush a batch after the new owner has started
        (no fencing without a transactional producer). Keeping states per batch id means
        such a batch cannot mix with another, and ordering commits by (seq, generation)
        means a late commit from the former owner cannot roll the partition back.
        """
        batches = self.pending.pop(p, {})
        states = batches.pop(commit.batch, {})
        current = self.commits.get(p)
        if current is not None and commit.order <= current.order:
            # also the normal case when re-reading history this worker already holds
            log.debug("partition %d: commit %d (generation %d) is older than commit %d "
                      "(generation %d) already applied: ignored",
                      p, commit.seq, commit.generation, current.seq, current.generation)
            return
        unfinished = sum(len(v) for v in batches.values())
        if unfinished:
            log.warning("partition %d: %d state records of an unfinished batch ignored "
                        "(the writer died before committing it)", p, unfinished)
        self.states.setdefault(p, {}).update(states)
        self.commits[p] = commit
        self.durable[p] = commit

    # --- writing ----------------------------------------------------------------------

    def commit_record(self, partition: int, engine: Engine, expected: dict[str, int]) -> Commit:
        """The next commit record of ``partition`` (``expected``: next offset per source)."""
        resume = engine.commit_point(expected)
        previous = self.commits.get(partition)
        return Commit(uuid.uuid4().hex, partition, engine.model.to_bytes(), engine.stream_time,
                      resume, (previous.seq + 1) if previous else 1,
                      self.app.consumer_generation_id)

    async def commit_all(self, engines: Engines, next_offset: Mapping[int, dict[str, int]],
                         *, wait: bool = False) -> None:
        """Commit every partition changed since its last commit: its changed states and a
        commit record, written once the outputs sent so far are acknowledged.

        The states are serialised now (the next batch may change them); the writing runs
        beside the scoring loop (:meth:`_write_commit`), one commit at a time. While one is
        in flight, a call without ``wait`` leaves the partitions for the next call. With
        ``wait`` (revocation, shutdown) it returns once this commit is durable.

        Records go straight to the producer in batches (:class:`~streams.outbox.Outbox`),
        not through Faust's ``Topic.send`` / ``Table.send_changelog``: those wrap every
        record in channel and future objects, which cost more than the scoring itself at
        this volume.
        """
        if self.committing is not None:
            if not self.committing.done() and not wait:
                return
            await self.committing
            self.committing = None
        partitions, self.uncommitted = self.uncommitted, set()
        self.committed_at = time.monotonic()
        if not partitions:
            return
        records: list[tuple[bytes, bytes, int]] = []
        commits: dict[int, Commit] = {}
        for p in partitions:
            if p in engines:
                engine, store = engines[p]
                record = self.commit_record(p, engine, next_offset.get(p, {}))
                records += [(key, value, p) for key, value in store.commit_records(record)]
                self.commits[p] = commits[p] = record
        self.committing = asyncio.ensure_future(
            self._write_commit(self.outbox.take_unacked(), records, commits))
        if wait:
            await self.committing
            self.committing = None

    async def _write_commit(self, outputs: list[asyncio.Future[Any]],
                            records: list[tuple[bytes, bytes, int]],
                            commits: dict[int, Commit]) -> None:
        """Outputs acknowledged, then the states and commit records, then durable.

        The order is what makes a crash safe: a commit record on the changelog means every
        score, alert and dead letter of the batches before it was delivered. If the producer
        gave up on any of them, the commit is not written and the worker stops, so that a
        restart resumes from the last durable commit and sends them again.
        """
        try:
            await ensure_delivered(outputs, "outputs")
            topic = self.changelog_topic
            for key, value, p in records:
                self.changelog_out.add(topic, key, value, p)
            await self.changelog_out.send()
            await ensure_delivered(self.changelog_out.take_unacked(), "changelog records")
        except DeliveryFailed as exc:
            stop_worker(f"{exc}; a restart resumes from the last commit and sends them again")
        self.durable.update(commits)
