"""``greedy_batches`` ends quietly when Faust stops the agent (no crash logged on SIGTERM)."""

from __future__ import annotations

import asyncio

import faust

from streams.batches import greedy_batches


def test_a_stopping_agent_ends_the_batches_instead_of_crashing() -> None:
    """Faust stops an agent by throwing StopAsyncIteration into its channel; escaping an
    async generator it became RuntimeError('async generator raised StopAsyncIteration')."""
    app = faust.App("batches-test", broker="kafka://127.0.0.1:9", store="memory://")

    async def run() -> list[list[object]]:
        stream = app.stream(app.channel())
        batches = greedy_batches(stream, 10)
        got: list[list[object]] = []

        async def consume() -> None:
            async for batch in batches:
                got.append(batch)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)  # waiting on the empty channel
        stream.channel._throw(StopAsyncIteration())  # what faust's Actor.cancel() does
        await asyncio.wait_for(task, 5)  # ends; a RuntimeError would be raised here
        stream.channel._throw(StopAsyncIteration())  # thrown while not waiting: the same
        async for batch in greedy_batches(stream, 10):
            got.append(batch)
        return got

    assert asyncio.run(run()) == []
