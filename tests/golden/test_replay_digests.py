"""Golden replays: two fixed event streams through ``arscore replay`` give outputs whose
digests are committed here.

A restructure, a compiled build or a speed change that is meant to leave behaviour alone
must leave these digests alone. What is digested is everything a user of the replay sees:
every score, alert and dead letter (in order, the dead letters' wall-clock ``failed_at``
left out), every customer's final state and the run summary (its timings left out). When
a change alters the outputs on purpose, the new digests go here with a commit message
that says what changed and why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from streams.cli import main

HERE = Path(__file__).parent

GOLDEN = {
    # stream, extra replay flags -> sha256 of outputs, dead letters, states, summary
    "mixed": (("--reorder-hours", "6"), {
        "outputs": "b73980e3440354be94e55e5ab9d7dab72a59d1e89e7252b7852a9f556d839829",
        "deadletters": "58b370b4ce4d6ac3aab0751a0c9224d44b87b9eda44d248a498a07b9c652b38a",
        "states": "0fbe3b79a84dbfb1256e1734fd1450fbf17829ee3ff3a89313616ed526a6dc2e",
        "summary": "799883a147e0098a9c9eb76e5d075f251a08b5e9c118a666a1408bca60d788ce",
    }),
    "plain": (("--partitions", "4", "--reorder-hours", "12"), {
        "outputs": "27097472776596834224687cb565074bbf2b6797d6353689779607e2368dba4a",
        "deadletters": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "states": "566275396441dc1ffb159ca62bee33ea5045622d44b2e6151ed37a30a1404d4e",
        "summary": "1a0b4df8b07f1a7a838d125f93c1470f9dff8fd24e892b6fd556e5e21091a06c",
    }),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _without(lines: bytes, key: str) -> bytes:
    out = []
    for line in lines.splitlines():
        doc = orjson.loads(line)
        doc.pop(key, None)
        out.append(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    return b"\n".join(out)


def replay_digests(stream: str, flags: tuple[str, ...], tmp_path: Path) -> dict[str, str]:
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    states, summary = tmp_path / "states.jsonl", tmp_path / "summary.json"
    code = main(["replay", str(HERE / f"{stream}.jsonl"), "-o", str(out), "--dead-letter",
                 str(dead), "--state-out", str(states), "--summary-json", str(summary), *flags])
    assert code == 0
    doc = orjson.loads(summary.read_bytes())
    doc.pop("seconds")
    doc.pop("events_per_second")
    return {
        "outputs": _sha(out.read_bytes()),
        "deadletters": _sha(_without(dead.read_bytes(), "failed_at")),
        "states": _sha(states.read_bytes()),
        "summary": _sha(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)),
    }


@pytest.mark.parametrize("stream", sorted(GOLDEN))
def test_replay_outputs_match_the_committed_digests(stream: str, tmp_path: Path) -> None:
    flags, expected = GOLDEN[stream]
    assert replay_digests(stream, flags, tmp_path) == expected


def test_the_mixed_stream_covers_every_event_type_and_bad_input(tmp_path: Path) -> None:
    """The golden test means something only if its stream exercises every path."""
    raw = (HERE / "mixed.jsonl").read_bytes()
    for kind in (b"invoice.issued", b"payment.received", b"invoice.adjusted",
                 b"invoice.disputed", b"invoice.dispute_resolved"):
        assert b'"' + kind + b'"' in raw
    summary = tmp_path / "summary.json"
    assert main(["replay", str(HERE / "mixed.jsonl"), "-o", str(tmp_path / "o.jsonl"),
                 "--summary-json", str(summary), "--dead-letter", str(tmp_path / "d.jsonl"),
                 "--reorder-hours", "6"]) == 0
    doc = orjson.loads(summary.read_bytes())
    assert doc["events"]["duplicate"] > 10
    assert doc["events"]["rejected"] >= 2 and doc["events"]["dead_lettered"] >= 5
    assert doc["late_events"] > 0 and sum(doc["alerts"].values()) > 0
