"""``arscore produce FILE``: send a JSONL event file to the input topics, with progress."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.cli import CliError
from streams.progress import Progress


def register(sub: Any) -> None:
    p = sub.add_parser("produce", help="send a JSONL event file to the input topics")
    p.add_argument("file", help="JSONL events ('-' for stdin)")
    p.add_argument("--broker", help="bootstrap servers (default ARSCORE_BROKER_URL)")
    p.add_argument("--rate", type=float, default=0.0, help="events per second (default: flat out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streams.broker import (
        BrokerError,
        bootstrap_servers,
        client_options,
        ensure_topics,
        wait_until_reachable,
    )
    from streams.commands.worker import settings_from
    from streams.kafkaio import produce_lines

    settings = settings_from(args)
    if settings.embedded:
        raise CliError("produce: no broker given (--broker or ARSCORE_BROKER_URL)")
    if args.file != "-" and not Path(args.file).is_file():
        raise CliError(f"produce: no such file: {args.file}")
    try:
        wait_until_reachable(bootstrap_servers(settings.broker_url), settings.connect_timeout,
                             client_options(settings))
        ensure_topics(settings)
    except BrokerError as exc:
        raise CliError(str(exc), code=1) from None
    progress = Progress("produce")
    sent = 0
    with (sys.stdin.buffer if args.file == "-" else open(args.file, "rb")) as fh:
        for sent in produce_lines(settings, fh, rate=args.rate):
            progress.update(sent)
    progress.close()
    print(f"arscore produce: {sent:,} events sent to {settings.invoices_topic} / "
          f"{settings.payments_topic}", file=sys.stderr)
    return 0
