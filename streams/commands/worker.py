"""``arscore worker``: run the scoring worker against a broker (embedded when none is set)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streams.cli import CliError
from streams.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run the scoring worker (Faust) against a Kafka broker")
    p.add_argument("--broker", help="bootstrap servers (default ARSCORE_BROKER_URL; "
                   "empty = start the embedded dev broker)")
    p.add_argument("--web-port", type=int, help="Faust web port (default ARSCORE_WEB_PORT)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (default ARSCORE_METRICS_PORT)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    changes: dict[str, Any] = {}
    if getattr(args, "broker", None):
        changes["broker_url"] = args.broker
    if getattr(args, "web_port", None):
        changes["web_port"] = args.web_port
    if getattr(args, "metrics_port", None):
        changes["metrics_port"] = args.metrics_port
    settings = settings.with_changes(**changes)
    return settings.dev_broker_profile() if settings.dev_broker else settings


def run(args: argparse.Namespace) -> int:
    from models.build import arscore_version, core_build, describe
    from streams.broker import (
        BrokerError,
        bootstrap_servers,
        broker_for,
        client_options,
        ensure_topics,
        wait_until_reachable,
    )

    settings = settings_from(args)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the first line says which core runs; a warning when it is not the compiled one
    build = describe()
    logging.getLogger("arscore").log(
        logging.INFO if core_build() == "compiled" and "STALE" not in build else logging.WARNING,
        "arscore %s worker, %s", arscore_version(), build)
    try:
        with broker_for(settings) as s:
            servers = bootstrap_servers(s.broker_url)
            wait_until_reachable(servers, timeout=s.connect_timeout, options=client_options(s))
            ensure_topics(s)
            return serve(s, args.log_level)
    except BrokerError as exc:
        raise CliError(str(exc), code=1) from None


def serve(settings: Settings, log_level: str = "warning") -> int:
    """Run the Faust worker until it is stopped (SIGINT/SIGTERM); returns its exit code."""
    from prometheus_client import CollectorRegistry, start_http_server

    from streams.app import quiet_worker
    from streams.service import ScoringService

    registry = CollectorRegistry()
    try:
        start_http_server(settings.metrics_port, addr=settings.web_host, registry=registry)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {settings.web_host}:{settings.metrics_port}: "
                       f"{exc.strerror}", code=1) from None
    service = ScoringService(settings, registry)
    logging.getLogger("arscore").info(
        "worker %s on %s, metrics on http://%s:%d/metrics", settings.app_id,
        settings.broker_url, settings.web_host, settings.metrics_port)
    worker = quiet_worker(service.app, log_level)
    tune_gc()
    sys.setswitchinterval(settings.switch_interval_seconds)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def tune_gc() -> None:
    """Fewer cyclic-GC passes: the worker makes many short-lived objects per event, while
    its long-lived ones (customer states) only grow, and at 100,000 customers the GC took a
    sixth to a fifth of the core's time. ``gc.freeze()`` takes what start-up built (Faust,
    River, modules) out of every later pass; a higher first threshold makes young-generation
    passes rarer (CPython already amortises full ones)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, 20, 20)


GC_THRESHOLD0 = 20_000
"""Allocations between young-generation passes (CPython's default is 700)."""
