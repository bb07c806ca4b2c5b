"""``arscore demo``: embedded broker + worker + simulated events, with a live view of the results.

Everything runs on this machine and stops on Ctrl-C or after ``--duration`` seconds,
leaving no process behind.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

from schemas.codec import DecodeError, dumps, loads
from streams.cli import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="embedded broker + worker + simulated events, live view")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--rate", type=float, default=300.0, help="events per second")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (default: until Ctrl-C)")
    p.set_defaults(func=run)


def _feed(settings: Any, customers: int, days: int, rate: float, stop: threading.Event) -> None:
    from models.tools.simulator import SimulationConfig, simulate
    from streams.kafkaio import produce_lines

    lines = (dumps(e) for e in simulate(SimulationConfig(customers=customers, days=days)))
    for _ in produce_lines(settings, lines, rate=rate):
        if stop.is_set():
            return


def _warm_start(tmp: str, env: dict[str, str]) -> str:
    """Bootstrap a model on a year of simulated history (another seed than the live feed),
    so the first scores a newcomer sees come from a trained model, not a cold one."""
    print("arscore demo: training the model on a year of simulated history...", flush=True)
    history, checkpoint = f"{tmp}/history.jsonl", f"{tmp}/warm.ckpt"
    for argv in (["simulate", "--customers", "300", "--days", "365", "--seed", "4242", "-o", history],
                 ["bootstrap", history, "-o", checkpoint]):
        done = subprocess.run([sys.executable, "-m", "streams.cli", *argv], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CliError(f"demo: warm start failed: {done.stderr.strip()[-300:]}", code=1)
    return checkpoint


def _metric(url: str, name: str) -> float:
    """The sum of a metric's samples; NaN while the worker has none (not up yet, no labels)."""
    try:
        text = urllib.request.urlopen(url, timeout=1).read().decode()
    except OSError:
        return math.nan
    values = [float(line.rpartition(" ")[2]) for line in text.splitlines()
              if line.startswith(name)]
    return sum(values) if values else math.nan


def _status(url: str) -> str:
    """The demo's periodic line: events scored, customers, the model's progressive AUC."""
    events, customers = _metric(url, "arscore_events_total{"), _metric(url, "arscore_customers_tracked")
    auc = _metric(url, "arscore_model_roc_auc")
    return (f"--- {0 if math.isnan(events) else events:,.0f} events scored, "
            f"{0 if math.isnan(customers) else customers:,.0f} customers, "
            f"AUC {'-' if math.isnan(auc) else f'{auc:.3f}'}")


def run(args: argparse.Namespace) -> int:
    from streams.broker import BrokerError, EmbeddedBroker, ensure_topics, free_port
    from streams.commands.tail import describe
    from streams.commands.worker import settings_from
    from streams.kafkaio import consumer

    base = settings_from(args)
    try:
        broker = EmbeddedBroker().start()
    except BrokerError as exc:
        raise CliError(str(exc), code=1) from None
    worker = web = None
    stop = threading.Event()
    tmp = tempfile.TemporaryDirectory(prefix="arscore-demo-")
    try:
        settings = base.with_changes(broker_url=broker.url, dev_broker=True,
                                     metrics_port=free_port(), web_port=free_port(),
                                     reorder_seconds=37 * 3600).dev_broker_profile()
        ensure_topics(settings)
        env = {**os.environ, "ARSCORE_BROKER_URL": broker.url, "ARSCORE_DEV_BROKER": "1",
               "ARSCORE_METRICS_PORT": str(settings.metrics_port),
               "ARSCORE_WEB_PORT": str(settings.web_port),
               "ARSCORE_REORDER_SECONDS": str(settings.reorder_seconds)}
        env["ARSCORE_WARM_START"] = _warm_start(tmp.name, env)
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        web_port = free_port()
        web = subprocess.Popen(  # the worklist, on its own database in the demo's temp dir
            [sys.executable, "-m", "streams.cli", "web", "--port", str(web_port)],
            env={**env, "ARSCORE_DATABASE_URL": f"sqlite:///{tmp.name}/worklist.db"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        metrics_url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        print(f"arscore demo: broker {broker.url}, metrics {metrics_url}  (Ctrl-C to stop)\n"
              f"arscore demo: worklist http://127.0.0.1:{web_port}/", flush=True)
        feeder = threading.Thread(target=_feed, daemon=True, args=(
            settings, args.customers, args.days, args.rate, stop))
        feeder.start()
        c = consumer(settings, [settings.alerts_topic, settings.scores_topic])
        started = last_view = time.monotonic()
        while not args.duration or time.monotonic() - started < args.duration:
            if worker.poll() is not None:
                raise CliError("demo: the worker stopped unexpectedly", code=1)
            if web.poll() is not None:
                raise CliError("demo: the worklist service stopped unexpectedly", code=1)
            for tp, records in c.poll(timeout_ms=500).items():
                for r in records:
                    try:
                        doc = loads(r.value)
                    except DecodeError:
                        continue
                    if tp.topic == settings.alerts_topic:
                        print("ALERT " + describe("alerts", doc), flush=True)
                    elif doc["band"] == "critical" and doc.get("reasons"):
                        print("score " + describe("scores", doc), flush=True)
            if time.monotonic() - last_view > 5:
                last_view = time.monotonic()
                print(_status(metrics_url), flush=True)
        c.close()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        for proc in (web, worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        broker.stop()
        tmp.cleanup()
