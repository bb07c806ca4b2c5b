"""Crash mid-stream: kill -9 the worker at several points; nothing lost, nothing applied twice.

The same simulated stream goes through a real broker and a worker that is killed (SIGKILL:
no shutdown hook, no checkpoint, no group leave) three times while it works, and restarted
each time. Afterwards every customer's committed state (read from the changelog as
recovery reads it) equals the state ``arscore replay`` ends with, and the latest score per
customer and the set of alert ids equal the replay's: the per-partition model survives
the crashes too, because it is changelogged with the states of the same batch.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import committed_view, end_offsets, kill_worker, replay_with_state, wait_committed
from test_equivalence import REORDER, latest_scores, simulate

from schemas.codec import loads
from streams.kafkaio import produce_lines, read_all

pytestmark = pytest.mark.integration

FAST_GROUP = {"ARSCORE_SESSION_TIMEOUT": "6", "ARSCORE_HEARTBEAT_INTERVAL": "0.5",
              "ARSCORE_REBALANCE_TIMEOUT": "10", "ARSCORE_COMMIT_INTERVAL": "1.0"}


def consumed(worker) -> float:
    try:
        m = worker.scrape()
    except OSError:
        return 0.0
    return sum(v for k, v in m.items() if k.startswith("arscore_events_total{"))


def comparable(state: dict) -> dict:
    """A state without the per-source offsets (the replay's source is a file, not a topic)."""
    return {k: v for k, v in state.items() if k != "offsets"}


KILL_AFTER = (350, 500, 650)  # events consumed in that life before its kill -9


def durable_resume(settings) -> int:
    """Total resume offset over the input sources in the last committed batch."""
    _, commits = committed_view(settings)
    return sum(off for c in commits.values() for off in c["resume"].values())


def test_kill9_mid_stream_loses_nothing(make_worker, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, customers=120, days=150, seed=11)
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]

    # small batches and frequent state commits: each life commits several times, and a
    # kill lands at a random point (deciding, emitting, flushing, changelogging, or with
    # batches whose outputs went out but whose states are not committed yet)
    worker = make_worker(ARSCORE_REORDER_SECONDS=REORDER, ARSCORE_BATCH_MAX="50",
                         ARSCORE_STATE_COMMIT_SECONDS="0.05", **FAST_GROUP).start()
    producer = threading.Thread(target=lambda: list(produce_lines(worker.settings, lines)))
    producer.start()
    kills, resumes = [], []
    for after in KILL_AFTER:
        deadline = time.monotonic() + 60
        while consumed(worker) < after and time.monotonic() < deadline:
            time.sleep(0.02)
        kills.append(consumed(worker))
        kill_worker(worker)
        resumes.append(durable_resume(worker.settings))
        worker.start()
    producer.join()
    states, _ = wait_committed(worker.settings, end_offsets(worker.settings, lines))
    time.sleep(1.0)

    r_states, r_scores, r_alerts = replay_outputs(events, tmp_path, worker)
    k_scores, k_alerts = kafka_outputs(worker.settings)

    assert all(k > 0 for k in kills), kills  # every kill landed mid-stream
    # ...after durable progress: each restart resumed from its committed batch, not from 0
    assert 0 < resumes[0] < resumes[1] < resumes[2] < len(lines), resumes
    # states: nothing lost (billed/received/labels would be short), nothing applied twice
    assert states.keys() == r_states.keys()
    wrong = [c for c in r_states if comparable(states[c]) != comparable(r_states[c])]
    dump_mismatch(tmp_path, states, r_states, wrong)
    assert not wrong, [(c, _diff(states[c], r_states[c])) for c in wrong[:2]]
    # scores and alerts, model included
    assert k_scores.keys() == r_scores.keys()
    mismatched = [c for c in r_scores if k_scores[c] != r_scores[c]]
    assert not mismatched, [(c, _diff(k_scores[c], r_scores[c])) for c in mismatched[:3]]
    assert k_alerts == r_alerts
    labels = sum(s["n_labels"] for s in states.values())
    assert labels == sum(s["n_labels"] for s in r_states.values()) > 0
    print(f"crash: {len(kills)} kills at {kills} events consumed in each life, durable "
          f"resume offsets {resumes}, {len(lines)} events, "
          f"{len(states)} customers, {labels} labels; lost 0, applied twice 0")


def replay_outputs(events: Path, tmp_path: Path, worker, partitions: int = 1
                   ) -> tuple[dict[str, dict], dict[str, dict], set[str]]:
    """``arscore replay`` of the same file: final states, latest score per customer, alert ids."""
    out = tmp_path / "replay.jsonl"
    states = replay_with_state(events, out, worker.env, partitions=partitions)
    replayed = [loads(line) for line in out.read_bytes().splitlines()]
    topic = worker.settings
    scores = latest_scores([(None, _enc(d["value"])) for d in replayed
                            if d["topic"] == topic.scores_topic])
    alerts = {d["value"]["alert_id"] for d in replayed if d["topic"] == topic.alerts_topic}
    return states, scores, alerts


def kafka_outputs(settings) -> tuple[dict[str, dict], set[str]]:
    """What the worker published: latest score per customer, alert ids."""
    scores = latest_scores(read_all(settings, settings.scores_topic))
    return scores, {loads(v)["alert_id"] for _, v in read_all(settings, settings.alerts_topic)}


def dump_mismatch(tmp_path: Path, states: dict, r_states: dict, wrong: list[str]) -> None:
    """Both versions of every differing customer, for the post-mortem (left in tmp_path)."""
    if wrong:
        import json

        (tmp_path / "mismatch.json").write_text(json.dumps(
            {c: {"worker": states[c], "replay": r_states[c]} for c in wrong}, indent=1))


def _enc(doc: dict) -> bytes:
    from schemas.codec import dumps

    return dumps(doc)


def _diff(a: dict, b: dict) -> dict:
    """Differing fields as (worker, replay); lists shown by length and a short head."""
    def show(v: object) -> object:
        return f"list[{len(v)}] {str(v)[:120]}" if isinstance(v, list) else v

    return {k: (show(a.get(k)), show(b.get(k))) for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k) and k != "offsets"}
