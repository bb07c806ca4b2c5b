"""The delivery check a state commit relies on: real asyncio futures, no broker needed."""

from __future__ import annotations

import asyncio

import pytest

from streams.outbox import DeliveryFailed, ensure_delivered


def later(loop: asyncio.AbstractEventLoop, seconds: float, *,
          error: Exception | None = None, cancel: bool = False) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if cancel:
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)

    loop.call_later(seconds, settle)
    return future


def test_waits_for_every_batch_before_returning() -> None:
    async def run() -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        futures = [later(loop, 0.01), later(loop, 0.05), later(loop, 0.02)]
        await ensure_delivered(futures, "outputs")
        return futures

    assert all(f.done() for f in asyncio.run(run()))


def test_a_failed_batch_is_reported_after_all_have_settled() -> None:
    async def run() -> tuple[str, list[asyncio.Future[None]]]:
        loop = asyncio.get_running_loop()
        futures = [later(loop, 0.01, error=OSError("broker gone")), later(loop, 0.05)]
        with pytest.raises(DeliveryFailed) as caught:
            await ensure_delivered(futures, "outputs")
        return str(caught.value), futures

    message, futures = asyncio.run(run())
    assert all(f.done() for f in futures)
    assert "1 batch of outputs" in message and "broker gone" in message


def test_a_cancelled_batch_counts_as_not_delivered() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(DeliveryFailed, match=r"2 batches of changelog records.*cancelled"):
            await ensure_delivered([later(loop, 0.0, cancel=True), later(loop, 0.0, cancel=True)],
                                   "changelog records")

    asyncio.run(run())


def test_nothing_to_wait_for() -> None:
    asyncio.run(ensure_delivered([], "outputs"))
