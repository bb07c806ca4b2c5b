"""What an operator sees: a healthy worker's log is quiet, and SIGTERM is a clean stop that
writes the final commit.

Three things this guards (issue 16): every SIGTERM logged an ERROR "Crashed ...
RuntimeError('async generator raised StopAsyncIteration')" from ``greedy_batches``; the
broker check logged "group_id is None: disabling auto-commit" at WARNING every 5 s; and the
Faust worker's spinner wrote cursor escape codes (``ESC[?25h``) into log files.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import committed_view, end_offsets, replay_with_state, wait_committed
from test_equivalence import REORDER, simulate
from test_reliability_crash import comparable, consumed

from streams.kafkaio import produce_lines

pytestmark = pytest.mark.integration

# Commits only when the worker stops: no state commit by time (the first batch is well
# within an hour of start) and no tick (each tick commits). Without ticks the engine holds
# the newest events back (its other source is never declared idle): the final commit's
# resume offsets then say where the next life starts.
COMMIT_ONLY_ON_STOP = {"ARSCORE_STATE_COMMIT_SECONDS": "3600", "ARSCORE_TICK_SECONDS": "3600"}


def sigterm(worker) -> int:
    proc = worker.procs[-1]
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def settled(worker, timeout: float = 60.0) -> float:
    """Events counted once the count stops moving for two seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now = consumed(worker)
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= 2.0:
            return now
        time.sleep(0.1)
    raise AssertionError(f"still consuming after {timeout}s ({last})")


def assert_quiet(log: bytes) -> None:
    assert b"\x1b" not in log, log[-2000:]  # no terminal escape codes in a file
    text = log.decode(errors="replace")
    for word in ("WARNING", "ERROR", "Crashed", "Traceback"):
        assert word not in text, text[-3000:]


def test_idle_worker_log_is_quiet_and_sigterm_writes_the_final_commit(
        make_worker, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, customers=30, days=60, seed=5)
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    worker = make_worker(ARSCORE_BROKER_CHECK_SECONDS="1", ARSCORE_REORDER_SECONDS=REORDER,
                         **COMMIT_ONLY_ON_STOP).start()
    time.sleep(10)  # idle: ten broker checks, timers, fetches with nothing to fetch
    list(produce_lines(worker.settings, lines))
    first_life = settled(worker)
    _, commits = committed_view(worker.settings)
    assert not commits  # nothing committed while running: only the stop can write it

    assert sigterm(worker) == 0
    assert_quiet(worker.log.read_bytes())
    _, commits = committed_view(worker.settings)  # the stop's commit: where to resume
    assert 0 < sum(off for c in commits.values() for off in c["resume"].values()) <= len(lines)

    # the next life (ticking again) starts there: every event applied exactly once over the
    # two lives, and the states are those the replay ends with
    worker.env["ARSCORE_TICK_SECONDS"] = "0.5"
    worker.start()
    states, _ = wait_committed(worker.settings, end_offsets(worker.settings, lines))
    assert first_life + settled(worker) == len(lines)
    replayed = replay_with_state(events, tmp_path / "replay.jsonl", worker.env)
    assert states.keys() == replayed.keys()
    assert all(comparable(states[c]) == comparable(replayed[c]) for c in replayed)
    assert sigterm(worker) == 0
    assert_quiet(worker.log.read_bytes())
