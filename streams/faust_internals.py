"""Every private Faust / aiokafka attribute the worker reads or patches, in one place.

Each accessor says why the worker needs it and which upstream issue it works around
("none upstream" where it is a performance shortcut). ``tests/unit/test_faust_internals.py``
checks each attribute on the installed faust-streaming / aiokafka classes without a broker,
so an upgrade that removes or renames one fails a unit test instead of a worker in
production. Public Faust API (``app.consumer``, ``consumer.seek``, ``consumer.highwater``,
``app.flow_control``, ...) is used directly elsewhere and is not listed here.

The transport (fetch wait, delivery without four tasks per record) lives here too, because
it is made of overrides of private Faust methods:

1. **Fetch wait.** Faust hard-codes ``fetch_max_wait_ms=1500``. Apache Kafka answers a
   waiting fetch as soon as records arrive, so there the value only bounds idle polling;
   the Tansu broker (shared/BROKER.md) does not: a fetch that finds nothing new waits the
   full time even if records arrive meanwhile. One record every 137 ms on the embedded
   broker: median delivery 715 ms (max 1.47 s) at 1,500 ms, 15 ms at 100 ms, 5 ms at 10 ms.
   The worker uses ``Settings.fetch_wait_seconds`` (aiokafka reads it when it starts).
2. **Delivery without four tasks per record.** Faust hands every fetched record to the
   streams with ``wait_first(deliver(record), suspend_flow.wait())``: four asyncio tasks
   and an ``asyncio.wait`` per record, so that a delivery blocked on a full stream buffer
   is abandoned when a rebalance suspends the flow. While the flow runs, the delivery is
   awaited directly here; a suspended flow still takes Faust's path, and a rebalance
   stops the fetcher (cancelling a blocked delivery) before it touches the assignment.
   A record delivered around a rebalance is one the worker already tolerates (it checks
   every record's partition and offset against its state). Sustained events/s through
   the broker: 3,146 and 3,212 without, 4,423 and 3,630 with (bench/broker_throughput.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

# --- the consumer's transport -------------------------------------------------------
# Attributes: aiokafka ``AIOKafkaConsumer._fetch_max_wait_ms``; Faust
# ``AIOKafkaConsumerThread._create_worker_consumer``, ``Consumer._new_consumer_thread``,
# ``Consumer.wait_first`` (mode's ``Service.wait_first``) and ``Consumer.suspend_flow``.
# Why: see the module docstring. Upstream: none (the fetch wait is a dev-broker deviation,
# shared/BROKER.md 7; the delivery path is a performance shortcut).


def _is_delivery(consumer: Any, coros: tuple[Any, ...], timeout: Any) -> bool:
    """Faust's ``wait_first(deliver(record), suspend_flow.wait())`` while the flow runs."""
    return (timeout is None and len(coros) == 2 and not consumer.suspend_flow.is_set()
            and getattr(coros[1], "__qualname__", "") == "Event.wait")


def consumer_transport(app: Any, wait_ms: int) -> Any:
    """A transport for ``app``'s consumer whose fetches wait at most ``wait_ms``."""

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            if not hasattr(consumer, "_fetch_max_wait_ms"):  # aiokafka renamed it: fail loudly
                raise RuntimeError("aiokafka consumer has no _fetch_max_wait_ms to tune")
            consumer._fetch_max_wait_ms = wait_ms
            return consumer

    class TunedConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
            if _is_delivery(self, coros, timeout):
                coros[1].close()
                return WaitResults([coros[0]], [await coros[0]], False)
            return await super().wait_first(*coros, timeout=timeout)

    class Transport(faust_aiokafka.Transport):
        Consumer = TunedConsumer

    return Transport(app.conf.broker_consumer, app)


# --- streams and channels -------------------------------------------------------------


def stream_internals(stream: Any) -> tuple[Any, Callable[..., None], Callable[..., None]]:
    """``(errors, on_message_in, on_stream_event_in)`` of a Faust stream.

    ``stream.channel.queue._errors`` (mode ``ThrowableQueue``: exceptions thrown into the
    channel, raised by the stream's iterator), ``stream._on_message_in`` and
    ``stream._on_stream_event_in`` (the sensors' hooks). Why: :func:`streams.batches.
    greedy_batches` takes a batch from the channel in one go and so does, per record, the
    bookkeeping ``Stream.__aiter__`` does. Upstream: none (performance shortcut:
    ``Stream.take_events`` moves records one at a time and waits out ``within``).
    """
    return stream.channel.queue._errors, stream._on_message_in, stream._on_stream_event_in


# --- the producer ---------------------------------------------------------------------


def aiokafka_producer(producer: Any) -> Any:
    """The aiokafka producer behind Faust's (``Producer._ensure_producer()``).

    Why: :class:`streams.outbox.Outbox` sends with the client's batch API
    (``create_batch`` / ``send_batch``), one future per batch instead of Faust's channel and
    future objects per record. Upstream: none (performance shortcut).
    """
    return producer._ensure_producer()


# --- the consumer -----------------------------------------------------------------------


def running_consumer(app: Any) -> Any | None:
    """The app's consumer if it exists, else None (``App._consumer``).

    Why: ``app.consumer`` creates the consumer on first use; the timers and gauges read
    positions only once the worker made it. Upstream: none.
    """
    return app._consumer


def fetcher_client(consumer: Any) -> Any:
    """The aiokafka consumer behind Faust's (``consumer._thread._ensure_consumer()``).

    Why: whether a source is caught up needs the time of the last fetch response per
    partition (aiokafka ``last_poll_timestamp``) beside its high watermark, and Faust
    exposes only the high watermark. Upstream: none.
    """
    return consumer._thread._ensure_consumer()


def group_committed_offset(consumer: Any, tp: Any) -> int | None:
    """The offset the consumer group committed for ``tp`` (``Consumer._committed_offset``).

    Why: the log line that says the state re-reads records the group had committed past.
    Upstream: none (diagnostics only).
    """
    return consumer._committed_offset.get(tp)  # type: ignore[no-any-return]


def reset_read_offset(consumer: Any, tp: Any, offset: int) -> None:
    """Set Faust's read offset of ``tp`` back (``Consumer._read_offset``).

    Why: after a seek back over a gap, records fetched before the seek still arrive and
    each moves Faust's read offset past the records the seek re-fetches, which Faust then
    drops as already read. Upstream: the gaps are faust-streaming #596 (a race in recovery
    leaves gaps, open) and #606 (commits past an in-flight message, open, PR #707); the read
    offset has no upstream issue of its own.
    """
    consumer._read_offset[tp] = offset


def after_every_seek(consumer: Any, then: Callable[[], Awaitable[None]]) -> None:
    """Run ``then`` after each of Faust's seeks to the committed offsets (``perform_seek``).

    Why: Faust seeks every assigned partition to the group's committed offset after each
    recovery; the worker then seeks its input partitions to where the state's last commit
    stopped, which is the authority (shared/BROKER.md). Upstream: faust-streaming #216 /
    #217 and #221 (fetching resumed before the seek after a rebalance, fixed) and #596
    (race in recovery leaves gaps that block commits, open).
    """
    original = consumer.perform_seek

    async def perform_seek() -> None:
        await original()
        await then()

    consumer.perform_seek = perform_seek


def cap_commit_offsets(consumer: Any, cap: Callable[[Any, int | None], int | None]) -> None:
    """Let ``cap(tp, offset)`` lower each offset Faust is about to commit (``_new_offset``).

    Why: Faust commits what its stream acknowledged, which includes events still in the
    reorder buffer and batches whose states are not written yet. Upstream: faust-streaming
    #606 (commits past an in-flight message, open; fix proposed in PR #707).
    """
    new_offset = consumer._new_offset

    def capped(tp: Any) -> int | None:
        return cap(tp, new_offset(tp))

    consumer._new_offset = capped
