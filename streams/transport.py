"""Faust's aiokafka transport with two changes to the worker's consumer, both measured.

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

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults


def _is_delivery(consumer: Any, coros: tuple[Any, ...], timeout: Any) -> bool:
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
