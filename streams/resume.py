"""Where each input partition stands: the offsets the state expects, where to resume after
a rebalance, what Faust may commit, and which sources are caught up.

The state, not the consumer group's committed offset, is the authority on what has been
applied (``shared/BROKER.md``):

- after recovery each assigned input partition is sought to its committed resume offset
  (the lowest offset not yet applied, reorder buffer included), whatever offset the
  consumer group committed;
- Faust never commits past what a durable commit record says was applied;
- while running, a message past the expected offset (Faust skipped some) triggers a seek
  back, one before it is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.types import TP

from models.engine import Engine
from streams import faust_internals as internals
from streams.changelog import CommitLog
from streams.settings import Settings

log = logging.getLogger("arscore.worker")
CAUGHT_UP_FRESH_SECONDS = 2.5
"""How recent a fetch response must be to prove a source has nothing unread: Faust's
consumer long-polls for at most 1.5 s, so a live, caught-up partition is confirmed at
least that often; a fetcher stalled for longer proves nothing."""
GAP_SEEK_SETTLE_SECONDS = 2.0
"""After a seek back, records fetched before it are still arriving for this long."""
GAP_SEEKS_BEFORE_ACCEPTING = 3
"""Seeks that land past the same gap before it is accepted as a real gap in the log."""


class ResumePoints:
    """Per partition and input source, the next offset the engine expects, and the seeks."""

    def __init__(self, app: Any, settings: Settings, commits: CommitLog) -> None:
        self.app, self.settings, self.commits = app, settings, commits
        self.next_offset: dict[int, dict[str, int]] = {}
        """Per partition and input source: the next offset the engine expects."""
        self.gap_seeks: dict[str, tuple[int, float, int]] = {}
        self._hooked = False

    def is_input(self, tp: Any) -> bool:
        return tp.topic in self.settings.input_topics

    def applied(self, msg: Any) -> None:
        """``msg`` goes to the engine: the next one expected is the one after it."""
        self.next_offset.setdefault(msg.partition, {})[f"{msg.topic}:{msg.partition}"] = (
            msg.offset + 1)

    def hook(self, after_seek: Callable[[], Awaitable[None]]) -> None:
        """Once: seek to the resume points after Faust's seeks; cap what Faust commits."""
        if self._hooked:
            return
        consumer = self.app.consumer

        async def then() -> None:
            await self.seek_to_resume_points()
            await after_seek()

        internals.after_every_seek(consumer, then)
        internals.cap_commit_offsets(consumer, self.capped_offset)
        self._hooked = True

    def capped_offset(self, tp: Any, offset: int | None) -> int | None:
        """Faust never commits past what a durable commit record says was applied.

        Faust commits what its stream acknowledged, which includes events still in the
        reorder buffer and batches whose states are not yet written. Capping the group
        offset at the durable resume point means a restart starts at or before it (the
        state skips what it already applied) instead of past it, which would need a
        seek back that races Faust's fetcher.
        """
        if offset is None or not self.is_input(tp):
            return offset
        resume = self.commits.resume(tp, durable=True)
        if resume is None:
            return None
        return min(offset, resume)

    async def seek_to_resume_points(self) -> None:
        """Each assigned input partition resumes where its last committed batch stopped."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if not self.is_input(tp):
                continue
            resume = self.commits.resume(tp)
            if resume is None:
                continue
            src = f"{tp.topic}:{tp.partition}"
            committed = internals.group_committed_offset(consumer, tp)
            if committed is not None and committed > resume:
                log.warning("%s: consumer group committed offset %d but the state has applied "
                            "only up to %d; re-reading from %d", src, committed, resume, resume)
            else:
                log.info("%s: resuming at offset %d (group committed %s)", src, resume, committed)
            await consumer.seek(tp, resume)

    def assigned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if self.is_input(tp)}

    async def in_sequence(self, msg: Any, reseeking: set[Any]) -> bool:
        """True when ``msg`` is the next offset this partition's state expects.

        Behind it: already applied (a redelivery), skipped. Past it: the consumer skipped
        records (a Faust commit/seek race, or a commit past the reorder buffer), so seek
        back. A real gap in the log (transaction markers, compaction) is accepted after
        three seeks that land past it.
        """
        src = f"{msg.topic}:{msg.partition}"
        expected = self.next_offset.get(msg.partition, {}).get(src)
        if expected is None or msg.offset == expected:
            return True
        if msg.offset < expected:
            return False
        now = time.monotonic()
        last = self.gap_seeks.get(src)
        if last is not None and last[0] == expected:
            if now - last[1] < GAP_SEEK_SETTLE_SECONDS:
                # records fetched before the seek are still arriving; each one moves Faust's
                # read offset past the records the seek re-fetches, which Faust would then
                # drop as already read. Put it back so the re-fetched records get through.
                internals.reset_read_offset(self.app.consumer, msg.tp, expected)
                reseeking.add(msg.tp)
                return False
            if last[2] >= GAP_SEEKS_BEFORE_ACCEPTING:
                log.warning("%s: offsets %d..%d missing from the log; continuing at %d",
                            src, expected, msg.offset - 1, msg.offset)
                return True
        count = last[2] + 1 if last is not None and last[0] == expected else 1
        self.gap_seeks[src] = (expected, now, count)
        log.warning("%s: got offset %d, expected %d: seeking back", src, msg.offset, expected)
        reseeking.add(msg.tp)
        await self.app.consumer.seek(msg.tp, expected)
        return False

    def refresh_lagging(self, engines: Mapping[int, tuple[Engine, Any]], ready: bool) -> None:
        """Tell each engine which of its sources may still hold unread records (never idle).

        A source counts as caught up only on fresh evidence: a fetch response for its
        partition within the last ``CAUGHT_UP_FRESH_SECONDS`` whose high watermark is not
        past the next offset the state expects. Without it (backlog after a restart or
        rebalance, a stalled or paused fetcher, a busy machine), wall-clock silence proves
        nothing, and treating the source as idle would let the engine run ahead of records
        it has not read yet; they would then apply late, out of the replay's order.
        ``ready``: recovered and not rebalancing.
        """
        consumer = internals.running_consumer(self.app)
        if consumer is None:
            return
        if not ready or not consumer.flow_active:
            # fetching is paused (rebalance, shutdown) or about to move: silence now says
            # nothing about the inputs
            for engine, _ in engines.values():
                engine.lagging = frozenset(engine.sources)
            return
        client = internals.fetcher_client(consumer)  # aiokafka: high watermark + poll time
        now_ms = time.time() * 1000
        for p, (engine, _) in engines.items():
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

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind each input partition's high watermark, from what the state applied."""
        consumer = internals.running_consumer(self.app)
        if consumer is None:
            return {}
        out = {}
        for tp in consumer.assignment():
            if not self.is_input(tp):
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = self.next_offset.get(tp.partition, {}).get(f"{tp.topic}:{tp.partition}", 0)
            out[tp.topic, tp.partition] = max(0, high - position)
        return out
