"""Core benchmark: events/s through the pure engine (decode included and excluded) and
state bytes per customer. Prints figures; asserts nothing.

    .venv/bin/python bench/core_throughput.py --customers 100000 --days 60
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from models.config import ScoringConfig
from models.engine import Engine
from models.model import OnlineModel
from models.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import decode_event


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=20_000)
    ap.add_argument("--worker-gc", action="store_true",
                    help="apply the worker's GC policy (streams.commands.worker.tune_gc) after "
                         "decoding; the decoded events, which a worker never holds, are frozen")
    args = ap.parse_args()
    lines = [dumps(e) for e in simulate(SimulationConfig(customers=args.customers, days=args.days))]
    t = time.perf_counter()
    events = [decode_event(line) for line in lines]
    decode_s = time.perf_counter() - t
    if args.worker_gc:
        from streams.commands.worker import tune_gc

        tune_gc()
    core_s, store, _ = run(events, args.warmup, trace=False)
    _, _, used = run(events, args.warmup, trace=True)  # tracemalloc slows it: separate run
    n = len(events) - args.warmup
    print(f"events {len(events):,} customers {len(store):,}")
    print(f"decode          {len(events) / decode_s:,.0f} events/s")
    print(f"core (engine)   {n / core_s:,.0f} events/s after {args.warmup:,} warm-up events")
    print(f"core + decode   {1 / (core_s / n + decode_s / len(events)):,.0f} events/s")
    print(f"state memory    ~{used / len(store):,.0f} bytes per customer (tracemalloc growth "
          "during the measured run, over all customers)")


def run(events: list, warmup: int, trace: bool) -> tuple[float, dict, int]:
    store: dict = {}
    engine = Engine(ScoringConfig(), OnlineModel(), store, sources=("f",),
                    reorder_seconds=37 * 3600)
    for e in events[:warmup]:
        engine.submit(e, "f")
    if trace:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    t = time.perf_counter()
    for e in events[warmup:]:
        engine.submit(e, "f")
    engine.flush()
    elapsed = time.perf_counter() - t
    used = tracemalloc.get_traced_memory()[0] - base if trace else 0
    if trace:
        tracemalloc.stop()
    return elapsed, store, used


if __name__ == "__main__":
    main()
