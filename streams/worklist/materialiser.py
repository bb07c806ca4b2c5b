"""The consumer: ``ar.scores`` and ``ar.alerts`` -> the worklist database.

It runs in its own consumer group (never the worker's), and the database, not the
group's committed offset, is the authority on what has been applied: every batch's rows
and its next offsets are committed in one transaction (:func:`.store.apply_batch`), and on
every partition assignment the consumer seeks to the offsets stored there. A crash at any
point therefore re-reads at most the uncommitted batch, and re-applying it changes
nothing. The group offset is committed too, after the database, only so that ordinary
Kafka tooling shows this consumer's lag.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas.codec import DecodeError
from streams.broker import bootstrap_servers, client_options
from streams.settings import Settings
from streams.worklist.config import WebConfig
from streams.worklist.records import alert_row, score_row
from streams.worklist.store import Batch, apply_batch, stored_offsets

log = logging.getLogger(__name__)


class Materialiser:
    """Owns the Kafka consumer; :meth:`run` loops until ``stop`` is set."""

    def __init__(self, settings: Settings, config: WebConfig, engine: Engine) -> None:
        self.settings = settings
        self.config = config
        self.engine = engine
        self.topics = (settings.scores_topic, settings.alerts_topic)
        self.state = "starting"
        self.problem = ""
        self.lag: dict[str, int] = {}
        self.applied_batches = 0
        self._consumer: Any = None

    def health(self) -> dict[str, Any]:
        """Consumer state and lag (records on the topics not yet in the database)."""
        return {"state": self.state, "problem": self.problem, "group": self.config.group_id,
                "lag": dict(self.lag), "total_lag": sum(self.lag.values())}

    def _consumer_for(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.settings.broker_url),
            group_id=self.config.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.config.batch_max,
            session_timeout_ms=int(self.config.session_timeout * 1000),
            heartbeat_interval_ms=max(100, int(self.config.session_timeout * 1000) // 5),
            # kafka-python sends this as the JoinGroup rebalance timeout: how long a join
            # may wait for members that have died (shared/BROKER.md deviation 3); a batch
            # takes well under a second to apply, so 20 s is ample
            max_poll_interval_ms=int(self.settings.rebalance_timeout * 1000),
            # see streams/kafkaio.py: Tansu holds a fetch for the full wait and answers
            # with more than fetch_max_bytes
            fetch_max_wait_ms=self.settings.fetch_wait_ms, receive_message_max_bytes=64 << 20,
            **client_options(self.settings))

    def _seek_to_stored(self, assigned: Any) -> None:
        """On assignment: resume where the database says, not where the group says."""
        stored = stored_offsets(self.engine, self.topics)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)

    def _update_lag(self) -> None:
        lag: dict[str, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)  # from fetch responses: right on Tansu too
            if high is not None:
                lag[f"{tp.topic}:{tp.partition}"] = max(0, high - self._consumer.position(tp))
        self.lag = lag

    def _check_broker(self) -> None:
        """A quiet consumer cannot tell an idle topic from a lost broker (and kafka-python
        retries silently): now and then try to connect to a bootstrap server, and say so
        (health 503, one log line) while none answers. A socket connect, not a metadata
        call: kafka-python's metadata call blocks without a timeout while the broker is down."""
        problem = "broker unreachable"
        for server in bootstrap_servers(self.settings.broker_url).split(","):
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=2):
                    problem = ""
                    break
            except (OSError, ValueError):
                continue
        if problem and self.problem != problem:
            log.error("%s (broker %s); retrying", problem, self.settings.broker_url)
        elif not problem and self.problem == "broker unreachable":
            log.warning("broker reachable again")
        if problem:
            self.state, self.problem = "error", problem
        elif self.problem == "broker unreachable":
            self.state, self.problem = ("ok" if self._consumer.assignment() else "starting"), ""

    def decode(self, polled: dict[Any, list[Any]]) -> Batch:
        """One poll's records -> a :class:`Batch`; malformed ones are counted, not applied."""
        batch = Batch()
        for tp, records in polled.items():
            where = (tp.topic, tp.partition)
            parse = score_row if tp.topic == self.settings.scores_topic else alert_row
            target = batch.scores if parse is score_row else batch.alerts
            for r in records:
                try:
                    target.append(parse(r.value))
                except (DecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
                    # anything but DecodeError is a gap in the checks: still only this
                    # record's problem, and its message may quote the value, so not logged
                    reason = exc if isinstance(exc, DecodeError) else type(exc).__name__
                    batch.malformed[where] = batch.malformed.get(where, 0) + 1
                    # the reason names a field, never a value: no customer data in the log
                    log.warning("skipped a malformed record at %s[%d]@%d: %s",
                                tp.topic, tp.partition, r.offset, reason)
                batch.next_offsets[where] = r.offset + 1
        return batch

    def _poll(self) -> dict[Any, list[Any]]:
        """Wait for records, then take whatever else the client has already fetched, up to
        ``batch_max``: a batch is what is there, with no fill wait (fewer, larger
        transactions under load; a record alone when the topic is quiet)."""
        polled: dict[Any, list[Any]] = self._consumer.poll(
            timeout_ms=int(self.config.poll_seconds * 1000), max_records=self.config.batch_max)
        count = sum(len(r) for r in polled.values())
        while polled and count < self.config.batch_max:
            more = self._consumer.poll(timeout_ms=0, max_records=self.config.batch_max - count)
            if not more:
                break
            for tp, records in more.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
        # a rebalance inside a later poll may have given a partition to another instance
        # sharing this database: its records are no longer ours to apply
        owned = self._consumer.assignment()
        return {tp: records for tp, records in polled.items() if tp in owned}

    def _apply(self, polled: dict[Any, list[Any]]) -> bool:
        batch = self.decode(polled)
        try:
            apply_batch(self.engine, batch)
        except SQLAlchemyError as exc:
            # rewind: the batch is read again once the database is back
            for tp, records in polled.items():
                self._consumer.seek(tp, records[0].offset)
            if self.state != "error":
                log.error("database %s: %s; retrying", self.config.safe_database,
                          type(getattr(exc, "orig", None) or exc).__name__)
            self.state, self.problem = "error", "database unavailable"
            return False
        self.applied_batches += 1
        try:
            self._consumer.commit_async()
        except Exception as exc:  # only for tooling's lag view; the database is the authority
            log.debug("group offset commit failed: %s", exc)
        return True

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until ``stop`` is set; leaves the group on the way out."""
        from kafka import ConsumerRebalanceListener

        owner = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass  # each batch is committed before the next poll: nothing pending

            def on_partitions_assigned(self, assigned: Any) -> None:
                owner._seek_to_stored(assigned)

        self._consumer = self._consumer_for()
        checked = time.monotonic()
        try:
            self._consumer.subscribe(list(self.topics), listener=_Listener())
            while not stop.is_set():
                if time.monotonic() - checked > self.settings.broker_check_seconds:
                    self._check_broker()
                    checked = time.monotonic()
                polled = self._poll()
                if polled:
                    if not self._apply(polled):
                        stop.wait(1.0)
                        continue
                    self.state, self.problem = "ok", ""
                if self._consumer.assignment():
                    if self.state == "starting":
                        self.state = "ok"
                    self._update_lag()
        finally:
            self._consumer.close(autocommit=False)


def run_in_thread(materialiser: Materialiser, stop: threading.Event,
                  on_fatal: Any) -> threading.Thread:
    """Start :meth:`Materialiser.run` in a daemon thread; an unexpected error calls
    ``on_fatal(message)`` (the command stops the web server and exits non-zero)."""

    def target() -> None:
        try:
            materialiser.run(stop)
        except Exception as exc:
            materialiser.state, materialiser.problem = "error", type(exc).__name__
            log.error("the score consumer stopped: %s", type(exc).__name__)
            on_fatal(f"web: the score consumer stopped ({type(exc).__name__})")

    thread = threading.Thread(target=target, name="worklist-consumer", daemon=True)
    thread.start()
    time.sleep(0)  # let it start before the server takes the main thread
    return thread
