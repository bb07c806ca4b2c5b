"""Writes the two fixed event streams of the golden test (run once; the files are committed).

    .venv/bin/python tests/golden/make_streams.py

``mixed.jsonl``: 40 customers over 200 days with every event type, raised duplicate and
disorder rates, and hand-made bad lines (undecodable, invalid, refused by the state).
``plain.jsonl``: 200 customers over 200 days at the simulator's default rates, replayed
over 4 partitions. Regenerating them changes the golden digests: don't, unless on purpose.
"""

from __future__ import annotations

from pathlib import Path

from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps

HERE = Path(__file__).parent

MIXED = SimulationConfig(customers=40, days=200, seed=11, duplicate_rate=0.05,
                         disorder_rate=0.1, max_disorder_hours=12.0, partial_rate=0.3,
                         dispute_rate=0.08, credit_note_rate=0.05, unnamed_payment_rate=0.2,
                         overpayment_rate=0.05)
PLAIN = SimulationConfig(customers=200, days=200, seed=3)

BAD_LINES = {
    15: b'{"schema_version": 1, "type": "refund"}',
    40: b"not json at all",
    65: b'{"schema_version": 1, "type": "invoice.issued", "event_id": "x"}',
    90: (b'{"schema_version":1,"type":"payment.received","event_id":"bad-cur",'
         b'"customer_id":"C000001","amount":"10.00","currency":"JPY",'
         b'"received_at":"2024-02-01T00:00:00Z"}'),
    120: (b'{"schema_version":1,"type":"invoice.issued","event_id":"far-future",'
          b'"customer_id":"C000002","invoice_id":"F-1","amount":"10.00","currency":"EUR",'
          b'"issued_at":"2029-01-01T00:00:00Z","due_at":"2029-02-01T00:00:00Z"}'),
    150: b"",
}


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def main() -> None:
    mixed = [dumps(e) for e in simulate(MIXED)]
    for at, line in sorted(BAD_LINES.items(), reverse=True):
        mixed.insert(at, line)
    write(HERE / "mixed.jsonl", mixed)
    write(HERE / "plain.jsonl", [dumps(e) for e in simulate(PLAIN)])


if __name__ == "__main__":
    main()
