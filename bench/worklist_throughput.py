"""Worklist benchmark: how fast ``arscore web`` applies score records, and how fast its
worklist API answers with a large book.

1. Ingest: score records as bytes (as they come off ``ar.scores``) -> decoded and checked
   against the contract -> applied in batched transactions with their offsets, exactly the
   consumer's path minus Kafka (bench/broker_throughput.py measures the broker). Run into a
   SQLite file and into a PostgreSQL server started here (durable: fsync on).
2. API: the ``--customers`` latest scores in the database, the real app served by uvicorn
   in another process, requests over one keep-alive HTTP connection; p50/p99 per query.

    .venv/bin/python bench/worklist_throughput.py --customers 100000 --records 200000

Targets (issue 18): ingest at least 20,000 records/s; worklist API p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schemas.codec import dumps  # noqa: E402
from streams.broker import free_port  # noqa: E402
from streams.worklist.records import score_row  # noqa: E402
from streams.worklist.store import Batch, apply_batch, open_store  # noqa: E402

BANDS = ("low", "medium", "high", "critical")
TREATMENTS = ("none", "friendly_reminder", "call", "escalate", "credit_hold")


def records(n: int, customers: int, seed: int = 7) -> list[bytes]:
    """``n`` score records over ``customers`` customers (each at least once)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cid = f"C{(i % customers):07d}" if i < customers else f"C{rng.randrange(customers):07d}"
        p = rng.random()
        overdue = rng.random() < 0.3
        open_amount = rng.uniform(0, 50_000)
        out.append(dumps({
            "schema_version": 1, "customer_id": cid,
            "scored_at": f"2025-{1 + i * 12 // n:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "event_id": f"ev-{i}", "p_late": round(p, 6), "band": BANDS[min(3, int(p * 4))],
            "priority": f"{open_amount * p:.2f}", "open_amount": f"{open_amount:.2f}",
            "overdue_amount": f"{open_amount / 2:.2f}" if overdue else "0.00",
            "currency": rng.choice(("EUR", "USD", "GBP")), "open_invoices": rng.randrange(1, 9),
            "low_confidence": rng.random() < 0.1, "treatment": TREATMENTS[min(4, int(p * 5))],
            "model_version": "logreg-v1+2025-01-01T00:00:00Z", "labels_seen": i,
            "reasons": [{"code": "late_share", "text": "4 of the last 6 invoices paid late",
                         "weight": 0.6},
                        {"code": "avg_days_late", "text": "12 days late on average", "weight": 0.3}],
        }))
    return out


def ingest(url: str, raw: list[bytes], batch: int) -> tuple[float, float, float]:
    """Records/s from bytes to committed rows (decode + one transaction per batch), and
    the two parts' own rates (decode only, database only)."""
    engine = open_store(url)
    decoding = applying = 0.0
    for i in range(0, len(raw), batch):
        started = time.perf_counter()
        b = Batch(scores=[score_row(r) for r in raw[i:i + batch]])
        b.next_offsets[("ar.scores", 0)] = i + len(b.scores)
        decoded = time.perf_counter()
        apply_batch(engine, b)
        decoding += decoded - started
        applying += time.perf_counter() - decoded
    engine.dispose()
    return len(raw) / (decoding + applying), len(raw) / decoding, len(raw) / applying


def serve(url: str, port: int) -> None:
    """(Child process) the real app over ``url``, no consumer: the health is a stub."""
    import uvicorn

    from streams.settings import Settings
    from streams.worklist.api import create_app
    from streams.worklist.config import web_config
    from streams.worklist.store import make_engine

    config = web_config(Settings(), {"ARSCORE_DATABASE_URL": url})
    app = create_app(make_engine(url), config,
                     lambda: {"state": "ok", "problem": "", "group": "", "lag": {}, "total_lag": 0})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def server(url: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/api/health")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def latencies(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {path}: {resp.status}")
        out.append((time.perf_counter() - started) * 1000)
    conn.close()
    return out


def api_figures(url: str, requests: int, customers: int) -> list[tuple[str, float, float]]:
    """(query, p50 ms, p99 ms) for the worklist queries collectors make."""
    with server(url) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/worklist?limit=50")
        import orjson

        cursor = orjson.loads(conn.getresponse().read())["next_cursor"]
        queries = {
            "first page (50, by money at risk)": "/api/worklist?limit=50",
            "second page (cursor)": f"/api/worklist?limit=50&cursor={cursor}",
            "band=critical": "/api/worklist?limit=50&band=critical",
            "currency+treatment+min_priority": "/api/worklist?limit=50&currency=USD&treatment=call"
                                               "&min_priority=1000",
            "text search q=12345": "/api/worklist?limit=50&q=12345",
            "sort by p_late": "/api/worklist?limit=50&sort=-p_late",
            "one customer": f"/api/customers/C{customers // 2:07d}",
        }
        out = []
        everything: list[float] = []
        for name, path in queries.items():
            latencies(port, path, 20)  # warm up
            got = latencies(port, path, requests)
            everything += got
            q = statistics.quantiles(got, n=100)
            out.append((name, statistics.median(got), q[98]))
        q = statistics.quantiles(everything, n=100)
        out.append(("all of the above", statistics.median(everything), q[98]))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000,
                    help="records per transaction (arscore web's ARSCORE_WEB_BATCH_MAX default)")
    ap.add_argument("--requests", type=int, default=300, help="per API query")
    ap.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    raw = records(max(args.records, args.customers), args.customers)
    print(f"{len(raw):,} score records over {args.customers:,} customers, "
          f"batches of {args.batch:,}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        targets: list[tuple[str, Any]] = []
        if args.database in ("sqlite", "both"):
            targets.append(("sqlite", lambda: _null(f"sqlite:///{Path(tmp) / 'bench.db'}")))
        if args.database in ("postgresql", "both"):
            targets.append(("postgresql", _postgres))
        for name, make in targets:
            with make() as url:
                rate, decode_rate, apply_rate = ingest(url, raw, args.batch)
                if name == "postgresql":
                    _analyze(url)
                print(f"{name:<10} ingest {rate:>10,.0f} records/s  (target 20,000; decode alone "
                      f"{decode_rate:,.0f}/s, database alone {apply_rate:,.0f}/s)")
                for query, p50, p99 in api_figures(url, args.requests, args.customers):
                    print(f"{name:<10} API {query:<36} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                          "  (target p99 < 50 ms)")
    return 0


def _analyze(url: str) -> None:
    """Planner statistics after the bulk load, as PostgreSQL's autovacuum would gather them
    shortly after; without them the first queries plan on an empty table's estimates."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


@contextmanager
def _null(url: str) -> Iterator[str]:
    yield url


@contextmanager
def _postgres() -> Iterator[str]:
    from tests.integration.worklist_fixtures import temporary_postgres

    with temporary_postgres(durable=True) as pg:
        yield pg.new_database()


if __name__ == "__main__":
    sys.exit(main())
