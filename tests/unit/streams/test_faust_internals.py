"""Every private Faust / aiokafka attribute of :mod:`streams.faust_internals`, checked on the
installed faust-streaming and aiokafka without a broker: an upgrade that removes or renames
one fails here, not in a running worker.

Attributes the worker patches are also looked up in the library's source, so that a patch
on a name the library no longer calls (which would silently do nothing) fails too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import aiokafka
import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams import faust_internals as internals

TP0 = TP("inputs", 0)


@pytest.fixture
def app() -> Iterator[faust.App]:
    """An app with the worker's transport; nothing connects (the broker port is closed)."""
    app = faust.App("internals-test", broker="kafka://127.0.0.1:9", store="memory://")
    app.transport = internals.consumer_transport(app, 7)
    yield app


def _uses(module: Any, name: str) -> bool:
    return name in inspect.getsource(module)


# --- the transport ------------------------------------------------------------------


def fetch_wait_of(make: Callable[[], Any]) -> Any:
    """``_fetch_max_wait_ms`` of the aiokafka consumer ``make()`` builds (in a loop)."""
    async def run() -> Any:
        consumer = make()
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_aiokafka_consumer_has_fetch_max_wait_ms() -> None:
    assert fetch_wait_of(lambda: aiokafka.AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=123)) == 123


def test_consumer_thread_creates_its_consumer_in_create_worker_consumer(app: faust.App) -> None:
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert _uses(faust_aiokafka, "self._create_worker_consumer(")
    thread = app.consumer._thread
    assert type(thread).__name__ == "ConsumerThread"  # ours, made by _new_consumer_thread
    assert fetch_wait_of(lambda: thread._create_worker_consumer(app.transport)) == 7


def test_consumer_makes_its_thread_in_new_consumer_thread(app: faust.App) -> None:
    assert callable(faust_aiokafka.Consumer._new_consumer_thread)
    assert _uses(faust_consumer, "self._new_consumer_thread()")
    assert type(app.consumer).__name__ == "TunedConsumer"


def test_consumer_delivers_through_wait_first_and_suspend_flow(app: faust.App) -> None:
    consumer = app.consumer
    assert callable(consumer.wait_first)
    assert isinstance(consumer.suspend_flow, asyncio.Event)
    assert _uses(faust_consumer, "suspend_flow.wait()")
    assert _uses(faust_consumer, "self.wait_first(")
    assert asyncio.Event().wait.__qualname__ == "Event.wait"  # what _is_delivery recognises

    async def deliver() -> str:
        return "delivered"

    async def check() -> Any:
        flow = asyncio.Event()
        coros = (deliver(), flow.wait())
        assert internals._is_delivery(consumer, coros, None)
        return await consumer.wait_first(*coros)

    assert asyncio.run(check()).results == ["delivered"]


# --- streams and the producer -----------------------------------------------------------


def test_stream_internals_errors_and_sensor_hooks(app: faust.App) -> None:
    stream = app.stream(app.channel())
    errors, message_in, event_in = internals.stream_internals(stream)
    assert len(errors) == 0 and hasattr(errors, "popleft")
    stream.channel.queue._throw(StopAsyncIteration())
    assert isinstance(errors.popleft(), StopAsyncIteration)  # what a stopping agent throws
    assert callable(message_in) and callable(event_in)


def test_producer_has_ensure_producer(app: faust.App) -> None:
    assert callable(faust_aiokafka.Producer._ensure_producer)
    assert callable(app.producer._ensure_producer)
    for name in ("create_batch", "send_batch", "partitions_for"):
        assert callable(getattr(aiokafka.AIOKafkaProducer, name))


# --- the consumer -----------------------------------------------------------------------


def test_app_keeps_its_consumer_in_underscore_consumer(app: faust.App) -> None:
    assert internals.running_consumer(app) is None  # reading it does not create one
    consumer = app.consumer
    assert internals.running_consumer(app) is consumer


def test_fetcher_client_is_the_threads_aiokafka_consumer(app: faust.App) -> None:
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert callable(app.consumer._thread._ensure_consumer)
    for name in ("highwater", "last_poll_timestamp"):
        assert callable(getattr(aiokafka.AIOKafkaConsumer, name))


def test_group_committed_offset(app: faust.App) -> None:
    consumer = app.consumer
    assert internals.group_committed_offset(consumer, TP0) is None
    consumer._committed_offset[TP0] = 41
    assert internals.group_committed_offset(consumer, TP0) == 41


def test_reset_read_offset(app: faust.App) -> None:
    consumer = app.consumer
    assert _uses(faust_consumer, "self._read_offset")
    internals.reset_read_offset(consumer, TP0, 17)
    assert consumer._read_offset[TP0] == 17


def test_after_every_seek_wraps_perform_seek(app: faust.App) -> None:
    consumer = app.consumer
    assert callable(consumer.perform_seek)
    assert _uses(faust_consumer, ".perform_seek()")
    calls: list[str] = []

    async def original() -> None:
        calls.append("faust")

    async def then() -> None:
        calls.append("resume")

    consumer.perform_seek = original
    internals.after_every_seek(consumer, then)
    asyncio.run(consumer.perform_seek())
    assert calls == ["faust", "resume"]


def test_cap_commit_offsets_wraps_new_offset(app: faust.App) -> None:
    consumer = app.consumer
    assert callable(consumer._new_offset)
    assert _uses(faust_consumer, "self._new_offset(")
    consumer._new_offset = lambda tp: 50
    internals.cap_commit_offsets(consumer, lambda tp, offset: min(offset, 20))
    assert consumer._new_offset(TP0) == 20
