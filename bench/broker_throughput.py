"""Through-the-broker benchmark of one worker: sustained events/s and event-to-score latency.

Prints figures; asserts nothing. Uses the embedded Tansu broker with the PRODUCTION producer
settings (no dev-broker one-record batches: that workaround trades throughput for correct
restarts and is exercised by the restart tests, not here).

    .venv/bin/python bench/broker_throughput.py --events 100000 --rate 2000 --seconds 30

The events are a simulated history (20,000 customers, 120 days) that starts with no
customer history: for its first weeks nearly every event is a new invoice and no label
resolves, which is cheaper per event than a ledger in steady state (see
bench/core_throughput.py). ``--history`` events from the start of it are consumed before
anything is measured, so that both figures are taken in steady state; ``--history 0``
measures from the very start, as earlier versions of this script did.

1. Sustained: history + --events are produced first, then a worker is started; events/s
   is the count over the time the worker took for the --events after the history
   (scraped from /metrics over HTTP every 0.2 s).
2. Latency: a fresh worker catches up on the history (produced as a backlog), then the
   next events are offered at --rate for --warmup + --seconds; latency = time the score
   for an event was read from ar.scores minus the time that event was sent. This script's
   own load (a kafka-python producer and a reader of every score) costs about half a core;
   by default it runs at the lowest CPU priority (``--load-priority low``) so that it does
   not take the two cores from the worker and the broker, as producers on other hosts would
   not. Anything the lowered priority delays (a send, a read) still counts as latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps, loads
from streams.broker import EmbeddedBroker, ensure_topics, free_port
from streams.kafkaio import consumer, produce_lines, producer, route
from streams.settings import Settings


def start_worker(broker: EmbeddedBroker, tag: str) -> tuple[subprocess.Popen[bytes], Settings]:
    env = {**os.environ, "ARSCORE_BROKER_URL": broker.url, "ARSCORE_APP_ID": f"bench-{tag}",
           "ARSCORE_INVOICES_TOPIC": f"inv-{tag}", "ARSCORE_PAYMENTS_TOPIC": f"pay-{tag}",
           "ARSCORE_SCORES_TOPIC": f"scores-{tag}", "ARSCORE_ALERTS_TOPIC": f"alerts-{tag}",
           "ARSCORE_DEADLETTER_TOPIC": f"dead-{tag}", "ARSCORE_METRICS_PORT": str(free_port()),
           "ARSCORE_WEB_PORT": str(free_port()), "ARSCORE_PARTITIONS": "4",
           "ARSCORE_DATA_DIR": f"/tmp/arscore-bench-{tag}-{uuid.uuid4().hex[:4]}"}
    settings = Settings.from_env(env)
    ensure_topics(settings)
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, settings


def scrape(settings: Settings, timeout: float = 2.0) -> str:
    """The worker's /metrics text, over HTTP."""
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    return urllib.request.urlopen(url, timeout=timeout).read().decode()  # type: ignore[no-any-return]


def consumed(settings: Settings) -> float:
    try:
        text = scrape(settings)
    except OSError:
        return -1.0
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("arscore_events_total{"))


def wait_ready(settings: Settings, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = scrape(settings)
        except OSError:
            text = ""
        if f"arscore_partitions_active {settings.partitions:.1f}" in text:
            return
        time.sleep(0.2)
    raise SystemExit("worker never became ready")


def produce_backlog(broker: EmbeddedBroker, tag: str, lines: list[bytes]) -> None:
    settings = Settings(broker_url=broker.url, invoices_topic=f"inv-{tag}",
                        payments_topic=f"pay-{tag}", partitions=4)
    ensure_topics(settings)
    t = time.monotonic()
    for _ in produce_lines(settings, lines):
        pass
    print(f"produced {len(lines):,} events in {time.monotonic() - t:.1f}s")


def sustained(broker: EmbeddedBroker, lines: list[bytes], history: int, workers: int = 1) -> None:
    tag = uuid.uuid4().hex[:6]
    produce_backlog(broker, tag, lines)
    started_workers = [start_worker(broker, tag) for _ in range(workers)]
    procs = [proc for proc, _ in started_workers]

    def total() -> float:  # a partition handed over is partly redone: counted twice
        return sum(max(consumed(settings), 0.0) for _, settings in started_workers)

    assert broker.proc is not None
    pids = {"broker": broker.proc.pid} | {f"worker {i + 1}" if workers > 1 else "worker": p.pid
                                          for i, p in enumerate(procs)}
    cpu_before: dict[str, float] = {}
    cpu_last: dict[str, float] = {}
    try:
        first = start = None
        last_count, last_change = 0.0, time.monotonic()
        started = time.monotonic()
        while (time.monotonic() - last_change < 10 if first else
               time.monotonic() - started < 90):
            n = total()
            now = time.monotonic()
            if n > 0 and first is None:
                first = (now, n)
            if n >= history and start is None:
                start = (now, n)
                cpu_before = cpu_snapshot(pids)
            if n > last_count:
                last_count, last_change = n, now
                if start is not None:
                    cpu_last = cpu_snapshot(pids)
            if n >= len(lines):
                break
            time.sleep(0.2)
        assert first is not None and start is not None, "worker processed too little"
        rate = (last_count - start[1]) / max(last_change - start[0], 1e-9)
        whole = (last_count - first[1]) / max(last_change - first[0], 1e-9)
        print(f"sustained: {last_count - start[1]:,.0f} events after {start[1]:,.0f} of history, "
              f"{rate:,.0f} events/s (whole backlog of {last_count:,.0f}: {whole:,.0f} events/s; "
              f"{workers} worker{'s' if workers > 1 else ''}, 4 partitions, production producer "
              "settings)")
        print("CPU while measured, % of one core: " + cpu_shares(
            cpu_before, cpu_last, last_change - start[0], last_count - start[1]))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def catch_up(settings: Settings, history: int, timeout: float = 600.0) -> None:
    """Wait until the worker has consumed the history backlog."""
    deadline = time.monotonic() + timeout
    while consumed(settings) < history:
        if time.monotonic() > deadline:
            raise SystemExit("worker did not catch up on the history")
        time.sleep(0.5)


def latency(broker: EmbeddedBroker, lines: list[bytes], rate: float, seconds: float,
            warmup: float, history: int, dump: str = "", low_priority: bool = True) -> None:
    tag = uuid.uuid4().hex[:6]
    if history:
        produce_backlog(broker, tag, lines[:history])
    proc, settings = start_worker(broker, tag)
    sent: dict[str, float] = {}
    lat: list[float] = []
    series: list[tuple[float, float, float]] = []  # (sent at, latency, to worker's send)
    stop = threading.Event()

    def read(c: Any) -> None:
        while not stop.is_set():
            for records in c.poll(timeout_ms=100).values():
                now = time.time()
                for r in records:
                    at = sent.get(loads(r.value)["event_id"])
                    if at is not None:
                        lat.append(now - at)
                        series.append((at, now - at, r.timestamp / 1000 - at))
        c.close()

    try:
        wait_ready(settings)  # offer load only once every partition is owned and recovered
        catch_up(settings, history)
        # read only what comes after the history: its scores are not measured, and parsing
        # them would take CPU from the worker while the load runs
        c = consumer(settings, [settings.scores_topic], from_beginning=False)
        for tp in c.assignment():
            c.position(tp)  # resolve the end now, before the first event is sent
        if low_priority:
            # from here on this thread, and the producer and reader threads it starts, run
            # at the lowest priority (Linux: niceness is per thread and inherited by threads
            # and processes started later; the broker and the worker were started before)
            os.nice(19)
        reader = threading.Thread(target=read, args=(c,), daemon=True)
        reader.start()
        prod = producer(settings)
        n = int(rate * (warmup + seconds))
        routed = [(loads(raw)["event_id"], *route(raw, settings), raw)
                  for raw in lines[history:history + n]]
        # the machine's two cores are shared by the worker, the broker and this process
        # (producer + reader): what each used while the measured load ran is printed
        assert broker.proc is not None
        pids = {"worker": proc.pid, "broker": broker.proc.pid, "bench": os.getpid()}
        first_measured = int(rate * warmup)
        cpu_before: dict[str, float] = {}
        t0 = time.time()
        for i, (event_id, topic, key, raw) in enumerate(routed):
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            if i == first_measured:
                cpu_before = cpu_snapshot(pids)
                buckets_before = ingest_buckets(settings)
                measured_from = time.time()
            sent[event_id] = time.time()
            prod.send(topic, key=key, value=raw)
        measured_seconds = time.time() - measured_from
        cpu = "n/a"
        if cpu_before:
            cpu = (cpu_shares(cpu_before, cpu_snapshot(pids), measured_seconds,
                              n - first_measured)
                   + f"; offered {(n - first_measured) / measured_seconds:,.0f} events/s "
                   "while measured")
        prod.flush()
        time.sleep(5)
        stop.set()
        own = metric_quantiles(buckets_before, ingest_buckets(settings)) if cpu_before else ""
        reader.join(timeout=5)
        if len(lat) < 20:
            print(f"latency: only {len(lat)} scores matched")
            return
        if dump:
            t_first = min(t for t, _, _ in series)
            with open(dump, "w") as f:
                f.writelines(f"{t - t_first:.3f} {d * 1000:.1f} {w * 1000:.1f}\n"
                             for t, d, w in sorted(series))
        steady = [d for t, d, _ in series if t >= t0 + warmup]
        # the score record's timestamp is the worker's send time: the rest is the broker and
        # this process's reader
        worker = [w for t, _, w in series if t >= t0 + warmup]
        print(f"latency (load at {'low' if low_priority else 'normal'} CPU priority) at "
              f"{rate:,.0f} events/s offered for {warmup:g}s of warm-up, then "
              f"{seconds:g}s measured: {len(steady):,} scores, {_quantiles(steady)} "
              f"(until the worker sent the score: {_quantiles(worker)}; warm-up included: "
              f"{len(lat):,} scores, {_quantiles(lat)}); CPU while measured, % of one core: "
              f"{cpu}")
        print(f"the worker's own arscore_ingest_to_score_seconds over the measured load: {own}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ingest_buckets(settings: Settings) -> dict[float, float]:
    """The worker's ingest-to-score histogram, scraped over HTTP: {upper bound: count}."""
    text = scrape(settings, timeout=5)
    prefix = 'arscore_ingest_to_score_seconds_bucket{le="'
    return {float(line[len(prefix):].partition('"')[0]): float(line.rpartition(" ")[2])
            for line in text.splitlines() if line.startswith(prefix)}


def metric_quantiles(before: dict[float, float], after: dict[float, float]) -> str:
    """p50 and p99 of what was observed between two scrapes, as the bucket bounds they
    fall under (a histogram cannot say more)."""
    counts = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = counts[-1][1]
    if total <= 0:
        return "no observations"
    bound = {q: next(le for le, n in counts if n >= q * total) for q in (0.5, 0.99)}
    return (f"{total:,.0f} scores, p50 <= {bound[0.5] * 1000:g} ms, "
            f"p99 <= {bound[0.99] * 1000:g} ms")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds each named process has used so far."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_shares(before: dict[str, float], after: dict[str, float], seconds: float,
               events: float) -> str:
    """Each process's CPU between two snapshots as % of one core over ``seconds``, then
    each worker's CPU per event."""
    used = {name: after[name] - before[name] for name in before}
    shares = ", ".join(f"{name} {cpu / max(seconds, 1e-9):.0%}" for name, cpu in used.items())
    per_event = ", ".join(f"{cpu / max(events, 1.0) * 1e6:.0f} µs" for name, cpu in used.items()
                          if name.startswith("worker"))
    return f"{shares}; worker CPU per event: {per_event}"


def _quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {statistics.median(values) * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rate", type=float, default=2_000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=10,
                    help="seconds of load before latency is measured (after the history)")
    ap.add_argument("--history", type=int, default=150_000,
                    help="events from the start of the simulated history consumed before "
                         "measuring: the first weeks are invoices only (cheaper than steady "
                         "state, and with --history 0 the invoices wait, by design, for the "
                         "payments source's event time, then flood out together)")
    ap.add_argument("--dump", default="", help="write 'seconds-since-start latency-ms "
                    "ms-until-the-worker-sent-the-score' lines")
    ap.add_argument("--workers", type=int, default=1,
                    help="workers sharing the partitions in the sustained run (one group)")
    ap.add_argument("--load-priority", choices=["low", "normal"], default="low",
                    help="CPU priority of this script's load (producer and score reader) in "
                         "the latency run: low (nice 19) leaves the worker and the broker the "
                         "CPU they ask for, as producers on other hosts would; normal shares "
                         "the two cores with them")
    ap.add_argument("--skip-sustained", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    lines = [dumps(e) for e in simulate(SimulationConfig(customers=20_000, days=120))]
    lines = lines[: args.history + max(args.events, int(args.rate * (args.seconds + args.warmup)))]
    d = Settings.from_env(os.environ)
    print(f"settings: partitions 4, producer_max_batch_size {d.producer_max_batch_size:,} B, "
          f"producer_linger {d.producer_linger * 1000:g} ms, batch_max {d.batch_max}, "
          "no batch fill wait, switch_interval_seconds "
          f"{d.switch_interval_seconds:g}, reorder_seconds {d.reorder_seconds:g} "
          "(production defaults unless ARSCORE_* says otherwise; no dev-broker profile)")
    with EmbeddedBroker() as broker:
        if not args.skip_sustained:
            sustained(broker, lines[: args.history + args.events], args.history, args.workers)
        if not args.skip_latency:
            latency(broker, lines, args.rate, args.seconds, args.warmup, args.history, args.dump,
                    low_priority=args.load_priority == "low")


if __name__ == "__main__":
    main()
