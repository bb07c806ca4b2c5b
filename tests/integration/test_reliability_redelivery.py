"""Redelivery: the same events produced again (whole file, then a shuffled random subset).

Every re-sent event is recognised by its event_id: committed states are unchanged, the
latest score per customer is unchanged, no alert is added, and every re-sent event is
counted as a duplicate. (Re-sent events are recognised while they are among the
customer's last ``ARSCORE_DEDUPE_IDS`` events; this stream has at most 72 per customer.)
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import end_offsets, wait_committed
from test_equivalence import REORDER, latest_scores, simulate

from schemas.codec import loads
from streams.kafkaio import produce_lines, read_all

pytestmark = pytest.mark.integration


def snapshot(worker, lines: list[bytes]) -> tuple[dict, dict, set]:
    states, _ = wait_committed(worker.settings, end_offsets(worker.settings, lines))
    time.sleep(1.0)
    scores = latest_scores(read_all(worker.settings, worker.settings.scores_topic))
    alerts = {loads(v)["alert_id"] for _, v in read_all(worker.settings,
                                                            worker.settings.alerts_topic)}
    return {c: {k: v for k, v in s.items() if k != "offsets"} for c, s in states.items()}, \
        scores, alerts


def duplicates(worker) -> float:
    m = worker.scrape()
    return sum(v for k, v in m.items()
               if k.startswith("arscore_events_total{") and 'outcome="duplicate"' in k)


def test_resent_events_change_nothing(make_worker, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, customers=60, days=120, seed=5)
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    worker = make_worker(ARSCORE_REORDER_SECONDS=REORDER, ARSCORE_DEDUPE_IDS="128").start()
    for _ in produce_lines(worker.settings, lines):
        pass
    before = snapshot(worker, lines)
    dup0 = duplicates(worker)

    rng = random.Random(7)
    subset = rng.sample(lines, len(lines) // 3)  # a random third, in random order
    sent = lines + lines
    for batch in (lines, subset):
        for _ in produce_lines(worker.settings, batch):
            pass
        sent = sent if batch is lines else sent + subset
        after = snapshot(worker, sent)
        assert after[0] == before[0], "state changed by re-sent events"
        assert after[1] == before[1], "latest scores changed by re-sent events"
        assert after[2] == before[2], "alerts added by re-sent events"
    resent = len(lines) + len(subset)
    assert duplicates(worker) - dup0 == resent
    print(f"redelivery: {len(lines)} events, {resent} re-sent, all {resent} recognised as "
          "duplicates; state, scores and alerts unchanged")
