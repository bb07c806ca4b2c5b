"""Output records handed to the Kafka producer a batch per partition, not one by one.

``AIOKafkaProducer.send`` is a coroutine, a metadata check, the partitioner and a future
per record; with a score and a changelog state per event, sending took 10.5% of the
worker's main thread in steady state (py-spy). The producer's batch API (``create_batch``
/ ``send_batch``) takes the same records with one future per batch: 2.7%.

Placement and order are what ``send`` gives: a keyed record without a partition goes
where the producer's partitioner puts it (Faust's ``key_partition``, the client's default
murmur2, so ``ar.scores`` keeps compacting per customer across versions), and records for
one partition keep the order they were added in.

Every batch's delivery future is kept until it is acknowledged or
:meth:`Outbox.take_unacked` hands it over (failed ones stay until then): the state commit
waits for exactly the outputs sent before it, not for a full producer flush (which would
also wait for everything sent while it waits).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.faust_internals import aiokafka_producer


class Outbox:
    """Collects (topic, partition, key, value) records; :meth:`send` submits them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        """The Faust app: its producer places keyed records, the aiokafka client behind
        that producer sends."""
        self._known: set[str] = set()
        self._pending: list[tuple[str, int | None, bytes | None, bytes]] = []
        self._unacked: list[asyncio.Future[Any]] = []

    def add(self, topic: str, key: bytes | None, value: bytes,
            partition: int | None = None) -> None:
        """Queue one record; keyed records without a partition are placed at :meth:`send`."""
        self._pending.append((topic, partition, key, value))

    async def send(self) -> None:
        """Hand every queued record to the producer, one batch per partition (or more, when
        one fills up), in the order they were added."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        # delivered without error: nothing left to wait for (failures are kept for the caller)
        self._unacked = [f for f in self._unacked if not delivered(f)]
        producer = self.app.producer
        client = aiokafka_producer(producer)
        for topic in {record[0] for record in pending} - self._known:
            await client.partitions_for(topic)  # the partitioner needs the topic's metadata
            self._known.add(topic)
        key_partition = producer.key_partition
        batches: dict[tuple[str, int], Any] = {}
        for topic, partition, key, value in pending:
            if partition is None:
                partition = key_partition(topic, key).partition
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = client.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                # full: submit it (send_batch waits until the partition's previous batch
                # has left, which keeps the order) and start the next one, which takes
                # its first record whatever its size
                self._unacked.append(await client.send_batch(batch, topic, partition=partition))
                batch = batches[topic, partition] = client.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, partition), batch in batches.items():
            self._unacked.append(await client.send_batch(batch, topic, partition=partition))

    def take_unacked(self) -> list[asyncio.Future[Any]]:
        """The delivery futures of every batch sent since the last call (done or not).

        A future fails if the producer gave up on its batch (after its retries): the
        caller must not make anything durable that depends on those records.
        """
        unacked, self._unacked = self._unacked, []
        return unacked


class DeliveryFailed(Exception):
    """The producer gave up on some batches (after its retries), or they were cancelled."""


def delivered(future: asyncio.Future[Any]) -> bool:
    """True once the broker acknowledged the batch (not failed, not cancelled)."""
    return future.done() and not future.cancelled() and future.exception() is None


async def ensure_delivered(futures: list[asyncio.Future[Any]], what: str) -> None:
    """Wait until every batch has settled; raise :class:`DeliveryFailed` if any was lost.

    Waits for all of them, not just until the first failure: the message then counts
    every lost batch, and nothing is still in flight when the caller reacts.
    """
    if not futures:
        return
    await asyncio.wait(futures)
    failed = [f for f in futures if not delivered(f)]
    if failed:
        first = failed[0]
        reason = "cancelled" if first.cancelled() else repr(first.exception())
        plural = "batch" if len(failed) == 1 else "batches"
        raise DeliveryFailed(f"{len(failed)} {plural} of {what} not delivered ({reason})")
