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

import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import faust
from faust.serializers import codecs
from prometheus_client import CollectorRegistry

from models.engine import Engine
from models.model import OnlineModel
from models.processor import DUPLICATE, OK, REJECTED, Step
from models.replay import merged_metrics
from models.serialize import state_from_dict, state_to_dict
from models.state import CustomerState
from schemas.codec import DecodeError, dumps, loads
from schemas.events import Event, decode_event
from schemas.records import BANDS, DeadLetter, dead_letter, encode
from streams.broker import faust_url
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("arscore.worker")
STATE_CODEC = "arscore_state"


class _StateCodec(codecs.Codec):
    """Customer states travel through the changelog as the project's JSON."""

    def _dumps(self, obj: Any) -> bytes:
        return dumps(state_to_dict(obj))

    def _loads(self, s: bytes) -> Any:
        return state_from_dict(loads(s))


codecs.register(STATE_CODEC, _StateCodec())


class PartitionStore(MutableMapping[str, CustomerState]):
    """The table's view for one partition: writes go to that partition's changelog.

    Writes are coalesced: a customer updated many times in one batch is changelogged once,
    when :meth:`flush` runs at the end of the batch.
    """

    def __init__(self, table: Any, partition: int) -> None:
        self.table, self.partition = table, partition
        self.dirty: dict[str, CustomerState] = {}

    def __getitem__(self, key: str) -> CustomerState:
        return self.table.data[key]  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.data.get(key, default)

    def __setitem__(self, key: str, value: CustomerState) -> None:
        self.table.data[key] = value
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("customer state is never deleted by the engine")

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)

    def flush(self) -> None:
        for key, value in self.dirty.items():
            self.table.send_changelog(self.partition, key, value)
        self.dirty.clear()


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
    """Builds the Faust app for these settings and owns the per-partition engines."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = s = settings
        self.metrics = Metrics(registry or CollectorRegistry())
        self.app = app = faust.App(s.app_id, **faust_settings(s))
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(s.invoices_topic, s.payments_topic, **raw)
        self.scores = app.topic(s.scores_topic, partitions=s.partitions,
                                config={"cleanup.policy": "compact"}, **raw)
        self.alerts = app.topic(s.alerts_topic, partitions=s.partitions, **raw)
        self.deadletter = app.topic(s.deadletter_topic, partitions=1, **raw)
        self.table = app.Table("customer_to_state", default=None, partitions=s.partitions)
        # Faust derives serializers from types only; states use the project's codec instead.
        # Set before first use: the store and changelog topic copy them when created.
        self.table.key_serializer = "json"
        self.table.value_serializer = STATE_CODEC
        self.engines: dict[int, tuple[Engine, PartitionStore]] = {}
        self.last_checkpoint = time.monotonic()
        app.agent(self.inputs, name="score_events")(self.score_events)
        app.timer(s.tick_seconds)(self.tick)
        app.timer(s.checkpoint_seconds)(self.checkpoint)
        app.on_partitions_revoked.connect(self.on_revoked)
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

    def engine(self, partition: int) -> tuple[Engine, PartitionStore]:
        if partition not in self.engines:
            s = self.settings
            store = PartitionStore(self.table, partition)
            engine = Engine(s.scoring(), self.load_model(partition), store,
                            sources=tuple(f"{t}:{partition}" for t in s.input_topics),
                            reorder_seconds=s.reorder_seconds, idle_seconds=s.idle_seconds,
                            wall=time.time())
            for state in list(self.table.data.values()):
                if any(k.endswith(f":{partition}") for k in state.offsets):
                    engine.schedule(state)
            self.engines[partition] = (engine, store)
            log.info("partition %d: engine ready (%s, %d labels)", partition,
                     engine.model.version, engine.model.labels_seen)
        return self.engines[partition]

    async def on_revoked(self, app: Any, revoked: Any, **_: Any) -> None:
        """A revoked partition's engine goes; its checkpoint lets the next owner resume."""
        for tp in revoked:
            if tp.topic in self.settings.input_topics and tp.partition in self.engines:
                self.save_model(tp.partition)
                del self.engines[tp.partition]

    # --- the agent --------------------------------------------------------------------

    async def score_events(self, stream: Any) -> None:
        """Decode, submit to the partition engine, write states, send outputs. Per batch."""
        async for batch in stream.take_events(500, within=0.02):
            wall = time.time()
            steps: list[Step] = []
            letters: list[DeadLetter] = []
            touched: set[int] = set()
            for event in batch:
                msg = event.message
                decoded = self._decode(msg, letters)
                if decoded is None:
                    continue
                if self._misrouted(msg, decoded):
                    await self.app.topic(msg.topic, key_serializer="raw",
                                         value_serializer="raw").send(
                        key=decoded.customer_id.encode(), value=msg.value)
                    continue
                engine, _ = self.engine(msg.partition)
                touched.add(msg.partition)
                steps += engine.submit(decoded, f"{msg.topic}:{msg.partition}", msg.offset,
                                       wall=wall, raw=msg.value)
            for p in touched:
                self.engines[p][1].flush()
            await self.emit(steps, letters)

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

    async def tick(self) -> None:
        """Live clock: release what idle inputs held back; let time pass for customers."""
        wall = time.time()
        steps: list[Step] = []
        for engine, store in list(self.engines.values()):
            steps += engine.tick(wall)
            store.flush()
        await self.emit(steps, [])
        self.observe()

    async def emit(self, steps: list[Step], letters: list[DeadLetter]) -> None:
        m = self.metrics
        for step in steps:
            if step.event is not None:
                outcome = {OK: "ok", DUPLICATE: "duplicate", REJECTED: "dead_lettered"}[step.status]
                m.events.labels(step.event.type, outcome).inc()
                if step.late:
                    m.late_events.inc()
            if step.status == REJECTED:
                topic, _, partition = (step.source or "").rpartition(":")
                letters.append(dead_letter(
                    step.raw, DecodeError(step.reason or "rejected"), topic=topic,
                    partition=int(partition) if partition.isdigit() else None,
                    offset=step.offset, failed_at=_now_iso(), stage="apply",
                    customer_id=step.customer_id,
                    event_id=step.event.event_id if step.event else None))
                continue
            for label in step.labels:
                m.labels.labels("late" if label.y else "on_time").inc()
            if step.score is not None:
                key = step.customer_id.encode()
                await self.scores.send(key=key, value=encode(step.score))
                m.scores.labels(step.score.band).inc()
                m.p_late.observe(step.score.p_late)
                if step.wall:
                    m.latency.observe(max(0.0, time.time() - step.wall))
            for alert in step.alerts:
                await self.alerts.send(key=step.customer_id.encode(), value=encode(alert))
                m.alerts.labels(alert.kind).inc()
        for letter in letters:
            key = letter.customer_id.encode() if letter.customer_id else None
            await self.deadletter.send(key=key, value=encode(letter))

    # --- observation and checkpoints ----------------------------------------------------

    def observe(self) -> None:
        """Refresh the gauges (once per tick: cheap enough, and no per-event cost)."""
        m = self.metrics
        states = list(self.table.data.values())
        m.customers.set(len(states))
        bands = [0] * len(BANDS)
        for state in states:
            bands[state.band] += 1
        for name, count in zip(BANDS, bands, strict=True):
            m.customers_by_band.labels(name).set(count)
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
        self._observe_lag()

    def _observe_lag(self) -> None:
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return
        for tp in consumer.assignment():
            if tp.topic not in self.settings.input_topics:
                continue
            high = consumer.highwater(tp)
            position = self.app.consumer._last_offset.get(tp) if hasattr(
                self.app.consumer, "_last_offset") else None
            if high is not None and position is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - position - 1))

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
        await self.checkpoint()
        log.info("models checkpointed on shutdown")


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
