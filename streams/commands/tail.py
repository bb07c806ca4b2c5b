"""``arscore tail scores|alerts|deadletter``: pretty-print an output topic."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from schemas.codec import DecodeError, loads
from streams.cli import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="pretty-print the scores, alerts or dead-letter topic")
    p.add_argument("which", choices=["scores", "alerts", "deadletter"])
    p.add_argument("--broker", help="bootstrap servers (default ARSCORE_BROKER_URL)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--latest", action="store_true",
                   help="scores: print only the latest score per customer, then exit")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="raw JSON lines instead of a table")
    p.set_defaults(func=run)


def describe(which: str, doc: dict[str, Any]) -> str:
    """One readable line per record."""
    if which == "scores":
        reasons = "; ".join(r["text"] for r in doc.get("reasons", []))
        return (f"{doc['customer_id']:<12} {doc['band']:<8} p={doc['p_late']:.2f} "
                f"at-risk {doc['priority']:>12} {doc.get('currency') or '':3} "
                f"{doc['treatment']:<17} {reasons}")
    if which == "alerts":
        return (f"{doc['raised_at'][:10]} {doc['kind']:<18} {doc['customer_id']:<12} "
                f"{doc['band']:<8} {doc['message']}")
    where = f"{doc['source_topic']}[{doc['source_partition']}]@{doc['source_offset']}"
    return f"{doc['failed_at'][:19]} {where:<24} {doc['reason']}"


def run(args: argparse.Namespace) -> int:
    from streams.broker import BrokerError, bootstrap_servers, client_options, wait_until_reachable
    from streams.commands.worker import settings_from
    from streams.kafkaio import consumer

    settings = settings_from(args)
    if settings.embedded:
        raise CliError("tail: no broker given (--broker or ARSCORE_BROKER_URL)")
    topic = {"scores": settings.scores_topic, "alerts": settings.alerts_topic,
             "deadletter": settings.deadletter_topic}[args.which]
    try:
        wait_until_reachable(bootstrap_servers(settings.broker_url), settings.connect_timeout,
                             client_options(settings))
    except BrokerError as exc:
        raise CliError(str(exc), code=1) from None
    c = consumer(settings, [topic], from_beginning=args.from_beginning or args.latest)
    latest: dict[bytes | None, dict[str, Any]] = {}
    started = quiet = time.monotonic()
    try:
        while not args.duration or time.monotonic() - started < args.duration:
            batch = c.poll(timeout_ms=300)
            for records in batch.values():
                for r in records:
                    quiet = time.monotonic()
                    try:
                        doc = loads(r.value)
                    except DecodeError:
                        continue
                    if args.latest:
                        latest[r.key] = doc  # the topic is compacted by key: keep the newest
                    else:
                        print(r.value.decode() if args.json else describe(args.which, doc),
                              flush=True)
            if args.latest and time.monotonic() - quiet > 1.5:
                break
    finally:
        c.close()
    for doc in sorted(latest.values(), key=lambda d: -float(d.get("priority", 0))):
        print(describe("scores", doc), file=sys.stdout)
    return 0
