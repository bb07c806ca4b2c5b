"""The Faust worker: topics, the customer table, the scoring agent, timers, metrics.

Thin by design: the agent decodes records, hands them to the partition's
:class:`~models.engine.Engine` (the pure core), writes the customer states back to
the changelogged table and sends what the core produced. No business rule lives here.

How several workers share learning: each input partition has its own engine and its
own model, learning only from that partition's customers. A partition's model moves
with the partition (checkpointed per partition), so which worker owns a partition
never changes the scores, and a replay with ``--partitions N`` reproduces them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import TP
from prometheus_client import CollectorRegistry

from models.deadletters import rejected_letter
from models.engine import Engine
from models.metrics import merged_metrics
from models.model import OnlineModel
from models.processor import DUPLICATE, OK, REJECTED, Step
from models.scoring import priority_units
from models.serialize import (
    PACKED_VERSION,
    dumps_packed,
    state_from_dict,
    state_from_record,
    state_to_dict,
)
from models.state import CustomerState
from schemas.codec import DecodeError, dumps, loads
from schemas.events import Event, decode_event
from schemas.records import BANDS, DeadLetter, dead_letter, encode
from streams.batches import greedy_batches
from streams.broker import faust_url
from streams.health import HealthExporter
from streams.metrics import Metrics
from streams.outbox import DeliveryFailed, Outbox, ensure_delivered
from streams.settings import Settings
from streams.transport import consumer_transport

log = logging.getLogger("arscore.worker")
CAUGHT_UP_FRESH_SECONDS = 2.5
"""How recent a fetch response must be to prove a source has nothing unread: Faust's
consumer long-polls for at most 1.5 s, so a live, caught-up partition is confirmed at
least that often; a fetcher stalled for longer proves nothing."""
_OUTCOME = {OK: "ok", DUPLICATE: "duplicate", REJECTED: "dead_lettered"}
STATE_CODEC = "arscore_state"


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


class _StateCodec(codecs.Codec):
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

    def __init__(self, table: Any, partition: int, data: dict[str, CustomerState]) -> None:
        self.table, self.partition, self.data = table, partition, data
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
        codec = _StateCodec()
        out = [(dumps(key), codec._dumps(StateRecord(record.batch, value)))
               for key, value in self.dirty.items()]
        self.dirty.clear()
        out.append((dumps(self.partition), codec._dumps(record)))
        return out


def faust_settings(s: Settings) -> dict[str, Any]:
    """Faust/aiokafka options; the dev-broker workaround is visible as one named setting."""
    opts: dict[str, Any] = dict(
        broker=faust_url(s.broker_url), store="memory://", topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor, web_enabled=True, web_port=s.web_port,
        web_bind=s.web_host, web_host=s.web_host, datadir=s.data_dir,
        consumer_auto_offset_reset="earliest", broker_commit_interval=s.commit_interval,
        broker_session_timeout=s.session_timeout, broker_heartbeat_interval=s.heartbeat_interval,
        broker_rebalance_timeout=s.rebalance_timeout, topic_allow_declare=True,
        table_cleanup_interval=3600.0,
    )
    if s.producer_max_batch_size:
        opts["producer_max_batch_size"] = s.producer_max_batch_size
    opts["producer_linger"] = s.producer_linger
    if s.security_protocol != "PLAINTEXT":
        opts["broker_credentials"] = _credentials(s)
    return opts


def _credentials(s: Settings) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=s.ssl_cafile or None)
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=s.sasl_username,
                                     password=s.sasl_password.reveal(),
                                     ssl_context=context if "SSL" in s.security_protocol else None,
                                     mechanism=s.sasl_mechanism)
    return faust.SSLCredentials(context)


class ScoringService:
    """Builds the Faust app for these settings and owns the per-partition engines.

    Crash consistency (``shared/BROKER.md``: the state, not the group's committed offset,
    is the authority on what has been applied):

    - every batch sends its outputs; at least every ``state_commit_seconds`` (and on
      every tick, revocation and shutdown) the outputs sent so far are acknowledged by
      the broker, then the changed customer states and a commit record (model, engine
      clock, resume offsets) are written to the partition's changelog; recovery applies
      only committed batches, and a successor redoes (identically) what followed;
    - after recovery each assigned input partition is sought to its committed resume
      offset (the lowest offset not yet applied, reorder buffer included), whatever
      offset the consumer group committed; while running, a message past the expected
      offset (Faust skipped some) triggers a seek back, one before it is skipped.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = s = settings
        self.metrics = Metrics(registry or CollectorRegistry())
        self.health = HealthExporter.from_settings(self.metrics.registry, s)
        self.app = app = faust.App(s.app_id, **faust_settings(s))
        app.transport = consumer_transport(app, s.fetch_wait_ms)
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(s.invoices_topic, s.payments_topic, **raw)
        self.scores = app.topic(s.scores_topic, partitions=s.partitions,
                                config={"cleanup.policy": "compact"}, **raw)
        self.alerts = app.topic(s.alerts_topic, partitions=s.partitions, **raw)
        self.deadletter = app.topic(s.deadletter_topic, partitions=1, **raw)
        self.table = app.Table("customer_to_state", default=None, partitions=s.partitions,
                               on_changelog_event=self.on_changelog)
        # Faust derives serializers from types only; states use the project's codec instead.
        # Set before first use: the store and changelog topic copy them when created.
        self.table.key_serializer = "json"
        self.table.value_serializer = STATE_CODEC
        self.states: dict[int, dict[str, CustomerState]] = {}
        """Committed customer states per partition (active and standby)."""
        self.commits: dict[int, Commit] = {}
        self.durable: dict[int, Commit] = {}
        """Commit records the broker has acknowledged: Faust may commit offsets up to these."""
        self.pending: dict[int, dict[str, dict[str, CustomerState]]] = {}
        """Per partition and batch id: states read from the changelog, awaiting their commit."""
        self.engines: dict[int, tuple[Engine, PartitionStore]] = {}
        self.uncommitted: set[int] = set()
        """Partitions with batches applied since their last commit record."""
        self.committed_at = time.monotonic()
        self.next_offset: dict[int, dict[str, int]] = {}
        """Per partition and input source: the next offset the engine expects."""
        self.gap_seeks: dict[str, tuple[int, float, int]] = {}
        self.lock = asyncio.Lock()
        self.outbox = Outbox(app)
        """Scores, alerts and dead letters."""
        self.changelog_out = Outbox(app)
        """State and commit records, written by :meth:`_write_commit`."""
        self.committing: asyncio.Future[None] | None = None
        """The commit being written, if any (one at a time: changelog order is commit order)."""
        self.last_checkpoint = time.monotonic()
        self.portfolio_at = -math.inf
        self.cfg = s.scoring()
        self._seek_hooked = False
        app.agent(self.inputs, name="score_events")(self.score_events)
        app.timer(s.tick_seconds)(self.tick)
        app.timer(s.checkpoint_seconds)(self.checkpoint)
        self.broker_ok_at = time.monotonic()
        if s.broker_lost_seconds > 0:
            app.timer(s.broker_check_seconds)(self.watch_broker)
        self.recovered = False
        """False from a revocation until table recovery completed for the new assignment."""
        app.on_rebalance_complete.connect(self.on_recovered)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_before_shutdown.connect(self.on_shutdown)

    # --- engines and models -----------------------------------------------------------

    def checkpoint_path(self, partition: int) -> Path:
        return self.settings.checkpoint_dir / f"{self.settings.app_id}-p{partition}.model"

    def load_model(self, partition: int) -> OnlineModel:
        """Latest checkpoint of this partition, else the warm-start checkpoint, else fresh."""
        for path in (self.checkpoint_path(partition),
                     Path(self.settings.warm_start) if self.settings.warm_start else None):
            if path is not None and path.is_file():
                try:
                    return OnlineModel.from_bytes(path.read_bytes())
                except ValueError as exc:
                    log.error("ignoring checkpoint %s: %s", path, exc)
        return OnlineModel(self.settings.model_kind, self.settings.scoring().prior_late_rate)

    def sources(self, partition: int) -> tuple[str, ...]:
        return tuple(f"{t}:{partition}" for t in self.settings.input_topics)

    def engine(self, partition: int) -> tuple[Engine, PartitionStore]:
        """The partition's engine, rebuilt from its last commit record when there is one."""
        if partition not in self.engines:
            s = self.settings
            commit = self.commits.get(partition)
            model = None
            if commit is not None:
                try:
                    model = OnlineModel.from_bytes(commit.model)
                except ValueError as exc:
                    log.error("partition %d: changelogged model unusable (%s)", partition, exc)
            if model is None:
                model = self.load_model(partition)
            store = PartitionStore(self.table, partition, self.states.setdefault(partition, {}))
            sources = self.sources(partition)
            engine = Engine(s.scoring(), model, store, sources=sources,
                            reorder_seconds=s.reorder_seconds, idle_seconds=s.idle_seconds,
                            wall=time.time())
            if commit is not None:
                self.next_offset[partition] = {k: v for k, v in commit.resume.items()
                                               if k in sources}
            engine.restore(commit.stream_time if commit is not None else -math.inf)
            self.engines[partition] = (engine, store)
            log.info("partition %d: engine ready (%s, %d labels, %d customers, resume %s, "
                     "stream time %s)", partition, engine.model.version,
                     engine.model.labels_seen, len(store.data), self.next_offset.get(partition),
                     _iso(engine.stream_time))
        return self.engines[partition]

    def commit_record(self, partition: int) -> Commit:
        engine, _ = self.engines[partition]
        resume = engine.commit_point(self.next_offset.get(partition, {}))
        previous = self.commits.get(partition)
        return Commit(uuid.uuid4().hex, partition, engine.model.to_bytes(), engine.stream_time,
                      resume, (previous.seq + 1) if previous else 1,
                      self.app.consumer_generation_id)

    async def on_changelog(self, event: Any) -> None:
        """Recovery and standby reading of the changelog: apply committed batches only."""
        p = event.message.partition
        # Decode the raw bytes ourselves: Faust's recovery decodes changelog values with the
        # topic's serializer as it was when the topic object was made (plain JSON), so
        # ``event.value`` is a dict here and a type check on it would skip every record.
        value = _StateCodec()._loads(event.message.value)
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

    async def on_assigned(self, app: Any, assigned: Any, **_: Any) -> None:
        """Hook the consumer's seek-to-committed (run after every recovery) once."""
        if self._seek_hooked:
            return
        consumer = self.app.consumer
        original = consumer.perform_seek

        async def perform_seek() -> None:
            await original()
            await self.seek_to_resume_points()
            self.metrics.partitions_active.set(len(self.assigned_partitions()))

        consumer.perform_seek = perform_seek
        new_offset = consumer._new_offset

        def capped_offset(tp: Any) -> int | None:
            """Faust never commits past what a durable commit record says was applied.

            Faust commits what its stream acknowledged, which includes events still in the
            reorder buffer and batches whose states are not yet written. Capping the group
            offset at the durable resume point means a restart starts at or before it (the
            state skips what it already applied) instead of past it, which would need a
            seek back that races Faust's fetcher.
            """
            offset = new_offset(tp)
            if offset is None or tp.topic not in self.settings.input_topics:
                return offset  # type: ignore[no-any-return]
            commit = self.durable.get(tp.partition)
            resume = commit.resume.get(f"{tp.topic}:{tp.partition}") if commit else None
            if resume is None:
                return None
            return min(offset, resume)  # type: ignore[no-any-return]

        consumer._new_offset = capped_offset
        self._seek_hooked = True

    async def seek_to_resume_points(self) -> None:
        """Each assigned input partition resumes where its last committed batch stopped."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic not in self.settings.input_topics:
                continue
            commit = self.commits.get(tp.partition)
            src = f"{tp.topic}:{tp.partition}"
            resume = commit.resume.get(src) if commit is not None else None
            if resume is None:
                continue
            committed = consumer._committed_offset.get(tp)
            if committed is not None and committed > resume:
                log.warning("%s: consumer group committed offset %d but the state has applied "
                            "only up to %d; re-reading from %d", src, committed, resume, resume)
            else:
                log.info("%s: resuming at offset %d (group committed %s)", src, resume, committed)
            await consumer.seek(tp, resume)

    def assigned_partitions(self) -> set[int]:
        consumer = self.app.consumer
        return {tp.partition for tp in consumer.assignment()
                if tp.topic in self.settings.input_topics}

    async def on_recovered(self, app: Any, **_: Any) -> None:
        """Faust finished reading the changelogs of the new assignment: engines may be built."""
        self.recovered = True

    async def on_revoked(self, app: Any, revoked: Any, **_: Any) -> None:
        """A revoked partition's engine goes; its last commit lets the next owner resume.

        Under the lock, so no batch is half done: the partition's states equal its last
        commit record, and waiting for it makes that record durable before the next owner
        reads the changelog (else it would redo the batch: harmless, but wasted).
        """
        self.health.on_rebalance()
        self.metrics.partitions_active.set(0)
        self.recovered = False
        async with self.lock:
            # the states of every partition = its last commit record, written
            await self.commit_all(wait=True)
            for tp in revoked:
                if tp.topic in self.settings.input_topics and tp.partition in self.engines:
                    self.save_model(tp.partition)
                    del self.engines[tp.partition]
                    self.next_offset.pop(tp.partition, None)
            await self.app.producer.flush()

    # --- the agent --------------------------------------------------------------------

    async def score_events(self, stream: Any) -> None:
        """Decode, submit to the partition engine, write states, send outputs. Per batch."""
        s = self.settings
        async for batch in greedy_batches(stream, s.batch_max):
            waited = time.monotonic()
            async with self.lock:
                started = time.monotonic()
                await self.process(batch)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d: waited %.3fs for the lock, took %.3fs", len(batch),
                          started - waited, time.monotonic() - started)

    async def process(self, batch: list[Any]) -> None:
        if not self.recovered:
            return  # fetched before recovery ended: the seek to the resume points re-reads it
        wall = time.time()
        self.refresh_lagging()
        steps: list[Step] = []
        letters: list[DeadLetter] = []
        touched: set[int] = set()
        assigned = self.app.consumer.assignment()
        reseeking: set[Any] = set()
        for event in batch:
            msg = event.message
            if msg.tp not in assigned or msg.tp in reseeking:
                continue  # fetched before a rebalance or a seek: the owner re-reads it
            if not await self._in_sequence(msg, reseeking):
                continue
            engine, _ = self.engine(msg.partition)
            touched.add(msg.partition)
            self.next_offset.setdefault(msg.partition, {})[f"{msg.topic}:{msg.partition}"] = (
                msg.offset + 1)
            decoded = self._decode(msg, letters)
            if decoded is None:
                continue
            if self._misrouted(msg, decoded):
                # through the outbox, like every output: the next commit, which moves the
                # resume offset past this record, then waits until the copy is delivered.
                # The copy is stamped anew: a broker may refuse old timestamps
                # (log.message.timestamp.before.max.ms), and a refused copy stops the
                # worker. Its ingest-to-score latency therefore counts from the copy.
                self.outbox.add(msg.topic, decoded.customer_id.encode(), msg.value)
                continue
            steps += engine.submit(decoded, f"{msg.topic}:{msg.partition}", msg.offset,
                                   wall=wall, raw=msg.value, ingested=msg.timestamp or 0.0)
        await self.emit(steps, letters)
        self.uncommitted |= touched
        if time.monotonic() - self.committed_at >= self.settings.state_commit_seconds:
            await self.commit_all()

    async def _in_sequence(self, msg: Any, reseeking: set[Any]) -> bool:
        """True when ``msg`` is the next offset this partition's state expects.

        Behind it: already applied (a redelivery), skipped. Past it: the consumer skipped
        records (a Faust commit/seek race, or a commit past the reorder buffer), so seek
        back. A real gap in the log (transaction markers, compaction) is accepted after
        three seeks that land past it.
        """
        if msg.partition not in self.engines and msg.partition in self.commits:
            self.engine(msg.partition)
        src = f"{msg.topic}:{msg.partition}"
        expected = self.next_offset.get(msg.partition, {}).get(src)
        if expected is None or msg.offset == expected:
            return True
        if msg.offset < expected:
            return False
        now = time.monotonic()
        last = self.gap_seeks.get(src)
        if last is not None and last[0] == expected:
            if now - last[1] < 2.0:
                # records fetched before the seek are still arriving; each one moves Faust's
                # read offset past the records the seek re-fetches, which Faust would then
                # drop as already read. Put it back so the re-fetched records get through.
                self.app.consumer._read_offset[msg.tp] = expected
                reseeking.add(msg.tp)
                return False
            if last[2] >= 3:
                log.warning("%s: offsets %d..%d missing from the log; continuing at %d",
                            src, expected, msg.offset - 1, msg.offset)
                return True
        count = last[2] + 1 if last is not None and last[0] == expected else 1
        self.gap_seeks[src] = (expected, now, count)
        log.warning("%s: got offset %d, expected %d: seeking back", src, msg.offset, expected)
        reseeking.add(msg.tp)
        await self.app.consumer.seek(msg.tp, expected)
        return False

    async def commit_all(self, *, wait: bool = False) -> None:
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
            if p in self.engines:
                record = self.commit_record(p)
                records += [(key, value, p)
                            for key, value in self.engines[p][1].commit_records(record)]
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
            _stop(f"{exc}; a restart resumes from the last commit and sends them again")
        self.durable.update(commits)

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()  # type: ignore[no-any-return]

    def _decode(self, msg: Any, letters: list[DeadLetter]) -> Event | None:
        try:
            return decode_event(msg.value if msg.value is not None else b"")
        except DecodeError as exc:
            self.metrics.events.labels("unknown", "dead_lettered").inc()
            letters.append(dead_letter(msg.value or b"", exc, topic=msg.topic,
                                       partition=msg.partition, offset=msg.offset,
                                       failed_at=_now_iso()))
            return None

    @staticmethod
    def _misrouted(msg: Any, event: Event) -> bool:
        """Keyed by something other than the customer id: re-key before touching state."""
        return msg.key != event.customer_id.encode()

    def refresh_lagging(self) -> None:
        """Tell each engine which of its sources may still hold unread records (never idle).

        A source counts as caught up only on fresh evidence: a fetch response for its
        partition within the last ``CAUGHT_UP_FRESH_SECONDS`` whose high watermark is not
        past the next offset the state expects. Without it (backlog after a restart or
        rebalance, a stalled or paused fetcher, a busy machine), wall-clock silence proves
        nothing, and treating the source as idle would let the engine run ahead of records
        it has not read yet; they would then apply late, out of the replay's order.
        """
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return
        if self.app.rebalancing or not self.recovered or not consumer.flow_active:
            # fetching is paused (rebalance, shutdown) or about to move: silence now says
            # nothing about the inputs
            for engine, _ in self.engines.values():
                engine.lagging = frozenset(engine.sources)
            return
        client = consumer._thread._ensure_consumer()  # aiokafka: high watermark + poll time
        now_ms = time.time() * 1000
        for p, (engine, _) in self.engines.items():
            expected = self.next_offset.get(p, {})
            lagging = set()
            for src in engine.sources:
                tp = TP(src.rpartition(":")[0], p)
                try:
                    high, polled = client.highwater(tp), client.last_poll_timestamp(tp)
                except AssertionError:  # not assigned (any more): nothing to wait for
                    continue
                if (high is None or polled is None or high > expected.get(src, 0)
                        or now_ms - polled > CAUGHT_UP_FRESH_SECONDS * 1000):
                    lagging.add(src)
            engine.lagging = frozenset(lagging)

    async def tick(self) -> None:
        """Live clock: release what idle inputs held back; let time pass for customers."""
        async with self.lock:
            wall = time.time()
            self.refresh_lagging()
            steps: list[Step] = []
            changed: set[int] = set()
            for p, (engine, store) in list(self.engines.items()):
                before = engine.stream_time
                released = engine.tick(wall)
                if engine.stream_time != before:
                    log.info("partition %d: tick released %d steps, stream time %s -> %s "
                              "(lagging %s)", p, len(released), _iso(before),
                              _iso(engine.stream_time), sorted(engine.lagging))
                if released or store.dirty:
                    changed.add(p)
                steps += released
            await self.emit(steps, [])
            self.uncommitted |= changed
            await self.commit_all()
        self.observe()

    async def emit(self, steps: list[Step], letters: list[DeadLetter]) -> None:
        """Send what a batch produced and count it (metrics are added once per batch)."""
        m, s = self.metrics, self.settings
        outbox = self.outbox
        outcomes: Counter[tuple[str, str]] = Counter()
        label_counts: Counter[int] = Counter()
        alert_counts: Counter[str] = Counter()
        late = 0
        latest: dict[str, Step] = {}
        for step in steps:
            if step.event is not None:
                outcomes[step.event.type, _OUTCOME[step.status]] += 1
                if step.late and step.status != DUPLICATE:
                    late += 1
                    log.info("%s offset %d: %s %s at %s applied late (behind the stream time)",
                             step.source, step.offset, step.event.type, step.event.event_id,
                             step.event.at.isoformat())
            if step.status == REJECTED:
                letters.append(rejected_letter(step, _now_iso()))
                continue
            for label in step.labels:
                label_counts[label.y] += 1
                self.health.on_label(label.p_at_issue, label.y)
            if step.score is not None:
                latest[step.customer_id] = step
            for alert in step.alerts:
                outbox.add(s.alerts_topic, step.customer_id.encode(), encode(alert))
                alert_counts[alert.kind] += 1
        # ar.scores is latest-per-customer: within one batch only a customer's last score
        # is sent (every alert is). The batch's commit flushes them before writing state.
        sent_at = time.time()
        bands: Counter[str] = Counter()
        for customer_id, step in latest.items():
            score = step.score
            assert score is not None
            outbox.add(s.scores_topic, customer_id.encode(), encode(score))
            bands[score.band] += 1
            m.p_late.observe(score.p_late)
            self.health.on_score(score.p_late)
            if step.wall:
                m.latency.observe(max(0.0, sent_at - step.wall))
            if step.ingested > 0:  # a producer's clock may run ahead of ours: never negative
                m.ingest_latency.observe(max(0.0, sent_at - step.ingested))
        for letter in letters:
            key = letter.customer_id.encode() if letter.customer_id else None
            outbox.add(s.deadletter_topic, key, encode(letter))
        await outbox.send()
        for (kind, outcome), n in outcomes.items():
            m.events.labels(kind, outcome).inc(n)
        for y, n in label_counts.items():
            m.labels.labels("late" if y else "on_time").inc(n)
        for band, n in bands.items():
            m.scores.labels(band).inc(n)
        for kind, n in alert_counts.items():
            m.alerts.labels(kind).inc(n)
        if late:
            m.late_events.inc(late)

    # --- broker watchdog -------------------------------------------------------------

    def _broker_problem(self) -> str | None:
        """None when the broker answers and the input topics exist, else what is wrong."""
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        from streams.broker import bootstrap_servers, client_options

        servers = bootstrap_servers(self.settings.broker_url)
        try:
            probe = KafkaConsumer(bootstrap_servers=servers, request_timeout_ms=3000,
                                  api_version_auto_timeout_ms=3000,
                                  **client_options(self.settings))
            try:
                topics = probe.topics()
            finally:
                probe.close()
        except (OSError, KafkaError, ValueError) as exc:
            return f"broker at {servers} unreachable ({type(exc).__name__})"
        missing = [t for t in self.settings.input_topics if t not in topics]
        if missing:
            return (f"input topics {', '.join(missing)} are gone from the broker at {servers} "
                    "(was it restarted? a memory-storage broker loses every topic and offset)")
        return None

    async def watch_broker(self) -> None:
        """Say loudly when the broker is lost or was reset, and stop rather than hang."""
        problem = await asyncio.get_running_loop().run_in_executor(None, self._broker_problem)
        if problem is None:
            self.broker_ok_at = time.monotonic()
            return
        lost_for = time.monotonic() - self.broker_ok_at
        log.error("%s for %.0fs", problem, lost_for)
        if lost_for >= self.settings.broker_lost_seconds:
            _stop(problem)

    # --- observation and checkpoints ----------------------------------------------------

    def observe(self) -> None:
        """Refresh the gauges once per tick (no per-event cost); the O(customers) ones less often."""
        m = self.metrics
        m.customers.set(sum(len(store.data) for _, store in self.engines.values()))
        now = time.monotonic()
        if now - self.portfolio_at >= self.settings.portfolio_seconds:
            self.portfolio_at = now
            self._observe_portfolio()
        engines = [e for e, _ in self.engines.values()]
        if engines:
            summary = merged_metrics([e.model for e in engines])
            m.model_auc.set(summary["roc_auc"])
            m.model_logloss.set(summary["log_loss"])
            m.model_brier.set(summary["brier"])
            m.model_ece.set(summary["ece"])
            m.model_labels.set(sum(e.model.labels_seen for e in engines))
        m.buffered.set(sum(e.buffered for e in engines))
        for p, (engine, _) in self.engines.items():
            wm = engine.stream_time
            if wm != float("-inf"):
                m.watermark.labels(str(p)).set(wm)
        m.checkpoint_age.set(time.monotonic() - self.last_checkpoint)
        self.health.refresh()
        self._observe_lag()

    def _observe_portfolio(self) -> None:
        """Customers by band and money at risk: a walk over every customer."""
        bands = [0] * len(BANDS)
        risk = 0
        cfg = self.cfg
        for engine, store in self.engines.values():
            for state in store.data.values():
                bands[state.band] += 1
                risk += priority_units(state, engine.stream_time, cfg)
        for name, count in zip(BANDS, bands, strict=True):
            self.metrics.customers_by_band.labels(name).set(count)
        self.health.set_money_at_risk(risk / 10_000)

    def _observe_lag(self) -> None:
        """Records behind the partition's high watermark, counted from what the state applied."""
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return
        for tp in consumer.assignment():
            if tp.topic not in self.settings.input_topics:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            src = f"{tp.topic}:{tp.partition}"
            position = self.next_offset.get(tp.partition, {}).get(src, 0)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(0, high - position))

    def save_model(self, partition: int) -> None:
        engine, _ = self.engines[partition]
        path = self.checkpoint_path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(engine.model.to_bytes())
        os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint

    async def checkpoint(self) -> None:
        for partition in list(self.engines):
            self.save_model(partition)
        self.last_checkpoint = time.monotonic()

    async def on_shutdown(self, app: Any, **_: Any) -> None:
        """Finish the batch in hand and make it durable before the group hands partitions on.

        Runs before the consumer leaves the group: no changelog record of this worker can
        then land after the next owner has read the changelog.
        """
        self.recovered = False  # no batch starts after this one
        async with self.lock:
            await self.commit_all(wait=True)
            await self.app.producer.flush()
        await self.checkpoint()
        log.info("last batch flushed, models checkpointed on shutdown")


def _stop(problem: str) -> None:
    """Exit with code 3 now, from any task: the changelog holds only committed batches, so
    a restart resumes consistently (an exception here would only end the task)."""
    log.error("stopping the worker (exit code 3): %s; the changelog holds only committed "
              "batches, so a restart resumes consistently", problem)
    logging.shutdown()
    os._exit(3)


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat() if math.isfinite(epoch) else "-"


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
