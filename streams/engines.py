"""The engines of the partitions this worker owns, their models and model checkpoints.

How several workers share learning: each input partition has its own engine and its
own model, learning only from that partition's customers. A partition's model moves
with the partition (in its commit records, and checkpointed per partition), so which
worker owns a partition never changes the scores, and a replay with ``--partitions N``
reproduces them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from models.engine import Engine
from models.model import OnlineModel
from streams.changelog import CommitLog, PartitionStore
from streams.resume import ResumePoints
from streams.settings import Settings

log = logging.getLogger("arscore.worker")


class PartitionEngines:
    """Per input partition: the engine and the store of its committed customer states."""

    def __init__(self, settings: Settings, commits: CommitLog, positions: ResumePoints) -> None:
        self.settings, self.commits, self.positions = settings, commits, positions
        self.by_partition: dict[int, tuple[Engine, PartitionStore]] = {}
        self.last_checkpoint = time.monotonic()

    def __contains__(self, partition: int) -> bool:
        return partition in self.by_partition

    def items(self) -> Iterator[tuple[int, tuple[Engine, PartitionStore]]]:
        return iter(list(self.by_partition.items()))

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

    def sources(self, partition: int) -> tuple[str, ...]:
        return tuple(f"{t}:{partition}" for t in self.settings.input_topics)

    def get(self, partition: int) -> tuple[Engine, PartitionStore]:
        """The partition's engine, rebuilt from its last commit record when there is one."""
        if partition not in self.by_partition:
            s = self.settings
            commit = self.commits.commits.get(partition)
            model = None
            if commit is not None:
                try:
                    model = OnlineModel.from_bytes(commit.model)
                except ValueError as exc:
                    log.error("partition %d: changelogged model unusable (%s)", partition, exc)
            if model is None:
                model = self.load_model(partition)
            store = PartitionStore(partition, self.commits.states.setdefault(partition, {}))
            sources = self.sources(partition)
            engine = Engine(s.scoring(), model, store, sources=sources,
                            reorder_seconds=s.reorder_seconds, idle_seconds=s.idle_seconds,
                            wall=time.time())
            next_offset = self.positions.next_offset
            if commit is not None:
                next_offset[partition] = {k: v for k, v in commit.resume.items()
                                          if k in sources}
            engine.restore(commit.stream_time if commit is not None else -math.inf)
            self.by_partition[partition] = (engine, store)
            log.info("partition %d: engine ready (%s, %d labels, %d customers, resume %s, "
                     "stream time %s)", partition, engine.model.version,
                     engine.model.labels_seen, len(store.data), next_offset.get(partition),
                     iso(engine.stream_time))
        return self.by_partition[partition]

    def get_if_committed(self, partition: int) -> None:
        """Build the engine of a partition with a commit record, so its resume offsets apply."""
        if partition not in self.by_partition and partition in self.commits.commits:
            self.get(partition)

    def drop(self, partition: int) -> None:
        """A revoked partition: checkpoint its model, forget its engine and positions."""
        if partition in self.by_partition:
            self.save_model(partition)
            del self.by_partition[partition]
            self.positions.next_offset.pop(partition, None)

    def save_model(self, partition: int) -> None:
        engine, _ = self.by_partition[partition]
        path = self.checkpoint_path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(engine.model.to_bytes())
        os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint

    async def checkpoint(self) -> None:
        for partition in list(self.by_partition):
            self.save_model(partition)
        self.last_checkpoint = time.monotonic()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if math.isfinite(epoch) else "-"
