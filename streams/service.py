"""The Faust worker, wired: the app, the scoring agent, the timers and the rebalance hooks.

Thin by design: the agent decodes records, hands them to the partition's
:class:`~models.engine.Engine` (the pure core), and the parts below do the rest. No
business rule lives here. The parts, by concern:

- :mod:`streams.app`: Faust options, the app, the topics, the worker, the way out;
- :mod:`streams.changelog`: the customer-state table, its changelog records and codec,
  recovery of committed batches, writing commits;
- :mod:`streams.resume`: the offsets the state expects, seeks to resume, the capped
  commit offset, which sources are caught up;
- :mod:`streams.engines`: the partitions' engines, models and checkpoints;
- :mod:`streams.emitter`: scores, alerts and dead letters sent and counted;
- :mod:`streams.gauges`, :mod:`streams.metrics`, :mod:`streams.health`: what Prometheus sees;
- :mod:`streams.watchdog`: the broker check;
- :mod:`streams.faust_internals`: every private Faust / aiokafka attribute used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry

from models.processor import Step
from schemas.records import DeadLetter
from streams.app import Topics, build_app
from streams.batches import greedy_batches
from streams.changelog import CommitLog, declare_table
from streams.emitter import Emitter
from streams.engines import PartitionEngines, iso
from streams.gauges import Gauges
from streams.health import HealthExporter
from streams.metrics import Metrics
from streams.outbox import Outbox
from streams.resume import ResumePoints
from streams.settings import Settings
from streams.watchdog import BrokerWatchdog

log = logging.getLogger("arscore.worker")


class ScoringService:
    """Builds the Faust app for these settings and wires the parts that run it.

    Crash consistency (``shared/BROKER.md``: the state, not the group's committed offset,
    is the authority on what has been applied):

    - every batch sends its outputs; at least every ``state_commit_seconds`` (and on
      every tick, revocation and shutdown) the outputs sent so far are acknowledged by
      the broker, then the changed customer states and a commit record (model, engine
      clock, resume offsets) are written to the partition's changelog; recovery applies
      only committed batches, and a successor redoes (identically) what followed;
    - after recovery each assigned input partition is sought to its committed resume
      offset, whatever offset the consumer group committed; while running, a message past
      the expected offset triggers a seek back (:mod:`streams.resume`).
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = s = settings
        self.metrics = Metrics(registry or CollectorRegistry())
        self.health = HealthExporter.from_settings(self.metrics.registry, s)
        self.app = app = build_app(s)
        self.topics = Topics.declare(app, s)
        self.outbox = Outbox(app)
        """Scores, alerts and dead letters."""
        self.commits = CommitLog(app, self.outbox)
        self.table = declare_table(app, s, self.commits)
        self.positions = ResumePoints(app, s, self.commits)
        self.engines = PartitionEngines(s, self.commits, self.positions)
        self.emitter = Emitter(s, self.metrics, self.health, self.outbox)
        self.gauges = Gauges(self.metrics, self.health, s.scoring(), s.portfolio_seconds)
        self.lock = asyncio.Lock()
        """Held by a batch, a tick, a revocation or the shutdown: one at a time."""
        self.recovered = False
        """False from a revocation until table recovery completed for the new assignment."""
        app.agent(self.topics.inputs, name="score_events")(self.score_events)
        app.timer(s.tick_seconds)(self.tick)
        app.timer(s.checkpoint_seconds)(self.engines.checkpoint)
        self.watchdog = BrokerWatchdog(s)
        if s.broker_lost_seconds > 0:
            app.timer(s.broker_check_seconds)(self.watchdog.check)
        app.on_rebalance_complete.connect(self.on_recovered)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_before_shutdown.connect(self.on_shutdown)

    @property
    def ready(self) -> bool:
        """Recovered and not rebalancing: fetched records are the assignment's, in order."""
        return self.recovered and not self.app.rebalancing

    async def commit_all(self, *, wait: bool = False) -> None:
        await self.commits.commit_all(self.engines.by_partition, self.positions.next_offset,
                                      wait=wait)

    # --- rebalances and shutdown -------------------------------------------------------

    async def on_assigned(self, app: Any, assigned: Any, **_: Any) -> None:
        """Hook the consumer's seek-to-committed (run after every recovery) once."""
        self.positions.hook(self._after_seek)

    async def _after_seek(self) -> None:
        self.metrics.partitions_active.set(len(self.positions.assigned_partitions()))

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
                if self.positions.is_input(tp):
                    self.engines.drop(tp.partition)
            await self.app.producer.flush()

    async def on_shutdown(self, app: Any, **_: Any) -> None:
        """Finish the batch in hand and make it durable before the group hands partitions on.

        Runs before the consumer leaves the group: no changelog record of this worker can
        then land after the next owner has read the changelog.
        """
        self.recovered = False  # no batch starts after this one
        async with self.lock:
            await self.commit_all(wait=True)
            await self.app.producer.flush()
        await self.engines.checkpoint()
        log.info("last batch flushed, models checkpointed on shutdown")

    # --- the agent and the clock -------------------------------------------------------

    async def score_events(self, stream: Any) -> None:
        """Decode, submit to the partition engine, write states, send outputs. Per batch."""
        async for batch in greedy_batches(stream, self.settings.batch_max):
            waited = time.monotonic()
            async with self.lock:
                started = time.monotonic()
                await self.process(batch)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d: waited %.3fs for the lock, took %.3fs", len(batch),
                          started - waited, time.monotonic() - started)

    async def process(self, batch: list[Any]) -> None:
        """One batch of Faust events: in sequence, decoded, submitted, emitted, committed."""
        if not self.recovered:
            return  # fetched before recovery ended: the seek to the resume points re-reads it
        wall = time.time()
        self.positions.refresh_lagging(self.engines.by_partition, self.ready)
        steps: list[Step] = []
        letters: list[DeadLetter] = []
        touched: set[int] = set()
        assigned = self.app.consumer.assignment()
        reseeking: set[Any] = set()
        for event in batch:
            msg = event.message
            if msg.tp not in assigned or msg.tp in reseeking:
                continue  # fetched before a rebalance or a seek: the owner re-reads it
            self.engines.get_if_committed(msg.partition)  # its resume offsets apply
            if not await self.positions.in_sequence(msg, reseeking):
                continue
            engine, _ = self.engines.get(msg.partition)
            touched.add(msg.partition)
            self.positions.applied(msg)
            decoded = self.emitter.decode(msg, letters)
            if decoded is None:
                continue
            if msg.key != decoded.customer_id.encode():
                # Keyed by something other than the customer id: re-key before touching
                # state, through the outbox like every output: the next commit, which moves
                # the resume offset past this record, then waits until the copy is
                # delivered. The copy is stamped anew: a broker may refuse old timestamps
                # (log.message.timestamp.before.max.ms), and a refused copy stops the
                # worker. Its ingest-to-score latency therefore counts from the copy.
                self.outbox.add(msg.topic, decoded.customer_id.encode(), msg.value)
                continue
            steps += engine.submit(decoded, f"{msg.topic}:{msg.partition}", msg.offset,
                                   wall, token=(msg, wall))
        await self.emitter.emit(steps, letters)
        self.commits.uncommitted |= touched
        if time.monotonic() - self.commits.committed_at >= self.settings.state_commit_seconds:
            await self.commit_all()

    async def tick(self) -> None:
        """Live clock: release what idle inputs held back; let time pass for customers."""
        async with self.lock:
            wall = time.time()
            self.positions.refresh_lagging(self.engines.by_partition, self.ready)
            steps: list[Step] = []
            changed: set[int] = set()
            for p, (engine, store) in self.engines.items():
                before = engine.stream_time
                released = engine.tick(wall)
                if engine.stream_time != before:
                    log.info("partition %d: tick released %d steps, stream time %s -> %s "
                             "(lagging %s)", p, len(released), iso(before),
                             iso(engine.stream_time), sorted(engine.lagging))
                if released or store.dirty:
                    changed.add(p)
                steps += released
            await self.emitter.emit(steps, [])
            self.commits.uncommitted |= changed
            await self.commit_all()
        self.gauges.observe(self.engines, self.positions)
