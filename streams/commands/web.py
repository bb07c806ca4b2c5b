"""``arscore web``: the collectors' worklist service (see :mod:`streams.worklist`).

Consumes ``ar.scores`` and ``ar.alerts`` in its own consumer group into a database
(SQLite under ``ARSCORE_DATA_DIR`` by default, PostgreSQL with
``ARSCORE_DATABASE_URL=postgresql://...``) and serves the worklist pages and JSON API on
``ARSCORE_WEB_HOST`` (127.0.0.1 by default). SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.cli import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="the worklist: web pages and JSON API fed by the score topic")
    p.add_argument("--broker", help="bootstrap servers (default ARSCORE_BROKER_URL)")
    p.add_argument("--port", type=int, help="HTTP port (default ARSCORE_WORKLIST_PORT or 8765)")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, minus re-raising the stop signal after a graceful shutdown:
        a SIGTERM/Ctrl-C stop is a normal exit (code 0), not a death by signal."""

        stopped_by: list[int] = []  # noqa: RUF012 - set per instance before use

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self.stopped_by = list(self._captured_signals)
                self._captured_signals.clear()

    return Server


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from streams.broker import (
        BrokerError,
        bootstrap_servers,
        client_options,
        ensure_topics,
        wait_until_reachable,
    )
    from streams.settings import Settings
    from streams.worklist.api import create_app
    from streams.worklist.config import web_config
    from streams.worklist.materialiser import Materialiser, run_in_thread
    from streams.worklist.schema import SchemaError
    from streams.worklist.store import open_store

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # retries are ours to report
    try:
        settings = Settings.from_env()
        if args.broker:
            settings = settings.with_changes(broker_url=args.broker)
        config = web_config(settings, port=args.port)
    except ValueError as exc:
        raise CliError(f"web: {exc}") from None
    if settings.embedded:
        raise CliError("web: no broker given (--broker or ARSCORE_BROKER_URL); "
                       "`arscore demo` starts one with the web service")
    if config.dialect == "sqlite":
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        engine = open_store(config.database_url.reveal())
    except SchemaError as exc:
        raise CliError(f"web: {exc}", code=1) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        raise CliError(f"web: cannot open the database {config.safe_database}: {reason}",
                       code=1) from None
    try:
        servers = bootstrap_servers(settings.broker_url)
        wait_until_reachable(servers, settings.connect_timeout, client_options(settings))
        ensure_topics(settings)
    except BrokerError as exc:
        raise CliError(f"web: {exc}", code=1) from None
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as exc:
        raise CliError(f"web: cannot listen on {config.host}:{config.port}: {exc.strerror}",
                       code=1) from None

    materialiser = Materialiser(settings, config, engine)
    app = create_app(engine, config, materialiser.health)
    server = _server_class()(uvicorn.Config(app, log_level=args.log_level, access_log=False,
                                            lifespan="off", server_header=False))
    fatal: list[str] = []

    def on_fatal(message: str) -> None:
        fatal.append(message)
        server.should_exit = True

    def stop_early(_sig: int, _frame: Any) -> None:
        server.should_exit = True  # before uvicorn takes the signals over (and after)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_early)
    stop = threading.Event()
    consumer = run_in_thread(materialiser, stop, on_fatal)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"arscore web: http://{shown}:{port}/  (API docs /docs, database "
          f"{config.safe_database})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        consumer.join(timeout=15)
        engine.dispose()
    if fatal:
        raise CliError(fatal[0], code=1)
    return 0
