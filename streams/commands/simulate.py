"""``arscore simulate``: write a synthetic event stream (JSONL) and its ground truth (JSON).

Usage::

    arscore simulate --customers 500 --days 365 --seed 7 -o events.jsonl
    # -> events.jsonl, events.truth.json, and a one-line summary on stderr
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from models.tools.simulator import SimulationConfig, SimulationStats, simulate
from schemas.codec import dumps

_BATCH = 4096


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "simulate",
        help="write a synthetic invoice/payment event stream and its ground truth",
        description="Generate a deterministic synthetic accounts-receivable event stream "
                    "(JSON Lines, one event per line, in file order with some late and "
                    "duplicated deliveries) and a JSON file with each customer's hidden "
                    "profile and when it first went 30 days past due.",
    )
    p.add_argument("--customers", type=int, default=500, metavar="N",
                   help="number of customers (default: 500)")
    p.add_argument("--days", type=int, default=365, metavar="D",
                   help="length of the horizon in days (default: 365)")
    p.add_argument("--seed", type=int, default=7, metavar="S", help="random seed (default: 7)")
    p.add_argument("--start", default="2024-01-01", metavar="DATE",
                   help="start of the horizon, ISO date or RFC 3339 time; UTC when no "
                        "zone is given (default: 2024-01-01)")
    p.add_argument("-o", "--output", default="-", metavar="EVENTS.jsonl",
                   help="events file; '-' for stdout (default: -)")
    p.add_argument("--ground-truth", default=None, metavar="FILE",
                   help="ground-truth file (default: <output stem>.truth.json beside the "
                        "output; none when writing to stdout)")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"arscore: {message}", file=sys.stderr)
    return 2


def _parse_start(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _truth_path(output: str, explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if output == "-":
        return None
    out = Path(output)
    return out.with_name(f"{out.stem}.truth.json")


def _open(path: Path) -> IO[bytes]:
    return open(path, "wb")  # closed by the caller


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (0, or 2 for bad arguments or paths)."""
    customers, days = getattr(args, "customers", None), getattr(args, "days", None)
    if not isinstance(customers, int) or customers <= 0:
        return _fail(f"simulate: --customers must be a positive integer, got {customers}")
    if not isinstance(days, int) or days <= 0:
        return _fail(f"simulate: --days must be a positive integer, got {days}")
    start_text = str(getattr(args, "start", None) or "2024-01-01")
    try:
        start = _parse_start(start_text)
    except ValueError:
        return _fail(f"simulate: --start is not an ISO date or time: {start_text!r}")
    try:
        config = SimulationConfig(customers=customers, days=days,
                                  seed=int(getattr(args, "seed", 7)), start=start)
    except (TypeError, ValueError) as exc:
        return _fail(f"simulate: {exc}")
    output = str(getattr(args, "output", None) or "-")
    truth_path = _truth_path(output, getattr(args, "ground_truth", None))

    # open everything before the work starts, so a bad path fails fast
    files: list[IO[bytes]] = []
    try:
        if output == "-":
            out = sys.stdout.buffer
        else:
            out = _open(Path(output))
            files.append(out)
        truth_file = None
        if truth_path is not None:
            truth_file = _open(truth_path)
            files.append(truth_file)
    except OSError as exc:
        for fh in files:
            fh.close()
        return _fail(f"simulate: cannot write {exc.filename}: {exc.strerror}")

    stats = SimulationStats()
    started = time.perf_counter()
    try:
        try:
            lines: list[bytes] = []
            for event in simulate(config, stats):
                lines.append(dumps(event))
                if len(lines) >= _BATCH:
                    out.write(b"\n".join(lines) + b"\n")
                    lines.clear()
            if lines:
                out.write(b"\n".join(lines) + b"\n")
            out.flush()
            if truth_file is not None:
                truth_file.write(dumps(stats.truth) + b"\n")
        finally:
            for fh in files:
                fh.close()
    except BrokenPipeError:  # e.g. `arscore simulate | head`: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail(f"simulate: cannot write: {exc}")
    seconds = time.perf_counter() - started
    where = "stdout" if output == "-" else output
    truth_note = f", truth -> {truth_path}" if truth_path is not None else ""
    print(f"arscore simulate: {stats.events} events ({stats.invoices} invoices), "
          f"{customers} customers x {days} days, {stats.duplicates} duplicates, "
          f"{stats.out_of_order} out-of-order, {seconds:.2f}s -> {where}{truth_note}",
          file=sys.stderr)
    return 0
