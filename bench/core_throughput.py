"""Core benchmark: events/s through the pure engine and state bytes per customer.

Prints figures; asserts nothing.

    .venv/bin/python bench/core_throughput.py --customers 100000 --days 120 --worker-gc

The simulated history starts with no customer history at all: for the first net-30 to
net-60 days almost every event is a new invoice and no label resolves yet. That stretch
is cheaper per event than a ledger in steady state, where about as many payments as
invoices arrive, open invoices pass their due dates (a score each, with no event) and
the model learns on every resolved invoice. So the run is reported per quarter of the
stream, and the *steady-state* figure is the last half. Use ``--days`` of 120 or more
for it to mean something.

State size is the deep size of every customer's state at the end of the run (each
object counted once: the states, their invoices, rings, arrays and the boxed numbers
they hold, the store's keys and its dict), divided by the number of customers. It leaves
out allocator slack; ``--tracemalloc`` adds a second, slower figure (the allocator's
growth over the run) as a cross-check.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections import Counter
from types import FunctionType, ModuleType

from models.config import ScoringConfig
from models.engine import Engine
from models.model import OnlineModel
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from schemas.events import decode_event

PARTS = 4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=20_000)
    ap.add_argument("--worker-gc", action="store_true",
                    help="apply the worker's GC policy (streams.commands.worker.tune_gc) after "
                         "decoding; the decoded events, which a worker never holds, are frozen")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also run the stream again under tracemalloc (slow) for its growth")
    args = ap.parse_args()
    lines = [dumps(e) for e in simulate(SimulationConfig(customers=args.customers, days=args.days))]
    t = time.perf_counter()
    events = [decode_event(line) for line in lines]
    decode_s = time.perf_counter() - t
    del lines
    if args.worker_gc:
        from streams.commands.worker import tune_gc

        tune_gc()
    mix = Counter(e.type for e in events)
    print(f"events {len(events):,} over {args.days} days; "
          + ", ".join(f"{kind} {n / len(events):.0%}" for kind, n in mix.most_common()))
    print(f"decode          {len(events) / decode_s:,.0f} events/s")
    store, timings = run(events, args.warmup)
    for i, (n, seconds, scores, labels) in enumerate(timings):
        print(f"core, part {i + 1}/{PARTS}  {n / seconds:8,.0f} events/s  "
              f"({scores / n:.2f} scores and {labels / n:.2f} labels learned per event)")
    measured = sum(n for n, *_ in timings), sum(s for _, s, *_ in timings)
    steady = timings[PARTS // 2:]
    steady_n, steady_s = sum(n for n, *_ in steady), sum(s for _, s, *_ in steady)
    print(f"core (engine)   {measured[0] / measured[1]:,.0f} events/s after {args.warmup:,} "
          "warm-up events")
    print(f"core, steady    {steady_n / steady_s:,.0f} events/s (last half of the stream)")
    print(f"core + decode   {1 / (steady_s / steady_n + decode_s / len(events)):,.0f} events/s "
          "(steady state)")
    n_open = sum(len(s.invoices) for s in store.values())
    print(f"state memory    {deep_size(store) / len(store):,.0f} bytes per customer "
          f"({len(store):,} customers, {n_open / len(store):.1f} open invoices each)")
    if args.tracemalloc:
        used = traced_growth(events, args.warmup)
        print(f"tracemalloc     {used / len(store):,.0f} bytes per customer (allocator growth "
              "over the run after warm-up)")


def new_engine(store: dict) -> Engine:
    return Engine(ScoringConfig(), OnlineModel(), store, sources=("f",),
                  reorder_seconds=37 * 3600)


def run(events: list, warmup: int) -> tuple[dict, list[tuple[int, float, int, int]]]:
    """Submit every event; per part of the stream: (events, seconds, scores, labels)."""
    store: dict = {}
    engine = new_engine(store)
    for e in events[:warmup]:
        engine.submit(e, "f")
    rest = events[warmup:]
    size = -(-len(rest) // PARTS)
    timings = []
    for start in range(0, len(rest), size):
        part = rest[start:start + size]
        steps: list = []
        t = time.perf_counter()
        for e in part:
            steps += engine.submit(e, "f")
        if start + size >= len(rest):
            steps += engine.flush()
        seconds = time.perf_counter() - t
        scores = sum(s.score is not None for s in steps)
        labels = sum(len(s.labels) for s in steps)
        timings.append((len(part), seconds, scores, labels))
    return store, timings


def traced_growth(events: list, warmup: int) -> int:
    store: dict = {}
    engine = new_engine(store)
    for e in events[:warmup]:
        engine.submit(e, "f")
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for e in events[warmup:]:
        engine.submit(e, "f")
    engine.flush()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used


def deep_size(root: object) -> int:
    """Bytes held by ``root`` and everything it references, each object counted once.

    Walks ``gc.get_referents`` (which sees slot values, container items and dict values)
    and adds dict keys itself: CPython does not report the keys of a string-keyed dict.
    Classes, modules and functions are shared code, not data: not counted.
    """
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType | FunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack += gc.get_referents(obj)
        if isinstance(obj, dict):
            stack += obj.keys()
    return total


if __name__ == "__main__":
    main()
