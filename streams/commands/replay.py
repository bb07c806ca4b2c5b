"""``arscore replay EVENTS.jsonl -o OUT.jsonl``: the core over a file, no broker.

Writes one JSON line per output record, shaped like the Kafka path's output:
``{"topic": "ar.scores", "key": customer_id, "value": {...}}``, with the worker's rule
for scores (:mod:`models.outputs`): of what one line released, a customer's newest score.
Bad lines go to a dead-letter file with their line numbers; the run continues.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from models.model import OnlineModel
from models.tools.evaluation import alert_quality, truth_times
from models.tools.replay import Replay
from schemas.codec import DecodeError, dumps, loads
from schemas.records import to_dict
from streams.cli import CliError
from streams.partitioning import partition_for
from streams.progress import Progress
from streams.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="run an event file through the scoring core")
    p.add_argument("events", help="JSONL event file ('-' for stdin)")
    p.add_argument("-o", "--output", default="-", help="scores and alerts as JSONL (default stdout)")
    p.add_argument("--dead-letter", help="bad lines (default: OUTPUT.deadletter.jsonl or stderr)")
    p.add_argument("--ground-truth", help="simulator ground truth: report alert quality")
    p.add_argument("--partitions", type=int, default=1,
                   help="split customers like an N-partition topic (one model per partition)")
    p.add_argument("--reorder-hours", type=float, default=None,
                   help="event-time reorder window (default: ARSCORE_REORDER_SECONDS)")
    p.add_argument("--warm-start", help="model checkpoint to start from (arscore bootstrap)")
    p.add_argument("--state-out", help="write every customer's final state as JSONL")
    p.add_argument("--summary-json", help="write the summary as JSON to this file")
    p.set_defaults(func=run)


def _open_out(stack: ExitStack, path: str | None) -> IO[bytes]:
    if path in (None, "-"):
        return sys.stdout.buffer
    return stack.enter_context(open(path, "wb"))


def _lines(path: str, stack: ExitStack) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    if not Path(path).is_file():
        raise CliError(f"replay: no such event file: {path}")
    yield from stack.enter_context(open(path, "rb"))  # noqa: SIM115


def load_models(settings: Settings, partitions: int, warm_start: str | None) -> list[OnlineModel]:
    if warm_start:
        try:
            raw = Path(warm_start).read_bytes()
            return [OnlineModel.from_bytes(raw, origin=Path(warm_start).stem)
                    for _ in range(partitions)]
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot load checkpoint {warm_start}: {exc}") from None
    prior = settings.scoring().prior_late_rate
    return [OnlineModel(settings.model_kind, prior) for _ in range(partitions)]


def wall_clock() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.partitions < 1:
        raise CliError("replay: --partitions must be at least 1")
    reorder = (args.reorder_hours * 3600 if args.reorder_hours is not None
               else settings.reorder_seconds)
    models = load_models(settings, args.partitions, args.warm_start)
    truth = None
    if args.ground_truth:
        try:
            truth = truth_times(loads(Path(args.ground_truth).read_bytes(), max_bytes=None))
        except (OSError, DecodeError, AttributeError) as exc:
            raise CliError(f"cannot read ground truth {args.ground_truth}: {exc}") from None
    replay = Replay(settings.scoring(), models, reorder_seconds=reorder, clock=wall_clock,
                    partition_of=lambda cid: partition_for(cid, args.partitions))
    dl_path = args.dead_letter or (f"{args.output}.deadletter.jsonl"
                                   if args.output not in (None, "-") else None)
    with ExitStack() as stack:
        out = _open_out(stack, args.output)
        dead = stack.enter_context(open(dl_path, "wb")) if dl_path else sys.stderr.buffer
        topics = {"score": settings.scores_topic, "alert": settings.alerts_topic}
        progress = Progress("replay")
        bad = 0

        def write(items: Iterator[tuple[str, Any]]) -> None:
            nonlocal bad
            for kind, record in items:
                if kind == "deadletter":
                    bad += 1
                    dead.write(dumps(to_dict(record)) + b"\n")
                    where = f"line {record.source_offset}" if record.source_offset else "event"
                    print(f"arscore: {where}: {record.reason}", file=sys.stderr)
                    continue
                line = {"topic": topics[kind], "key": record.customer_id, "value": to_dict(record)}
                out.write(dumps(line) + b"\n")

        for no, raw in enumerate(_lines(args.events, stack), start=1):
            write(replay.feed(raw, no))
            progress.update(no)
        write(replay.finish())
        progress.close()
        summary = replay.summary()
        if truth is not None:
            summary["alert_quality"] = alert_quality(replay.first_alerts(), truth).as_dict()
        if args.state_out:
            from models.serialize import state_to_dict

            with open(args.state_out, "wb") as fh:
                for store in replay.stores:
                    for cid in sorted(store):
                        fh.write(dumps(state_to_dict(store[cid])) + b"\n")
    if args.summary_json:
        Path(args.summary_json).write_bytes(dumps(summary))
    print_summary(summary)
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    m = summary["model"]
    ev = summary["events"]
    lines = [
        f"events     {summary['lines']:,} lines: " + ", ".join(f"{k} {v:,}" for k, v in sorted(ev.items()))
        + f" (late {summary['late_events']:,})",
        f"customers  {summary['customers']:,}   scores {summary['scores']:,}   alerts "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(summary["alerts"].items())) or "none"),
        f"model      labels {int(m['labels']):,}  late rate {m['late_rate']:.3f}  "
        f"ROC AUC {m['roc_auc']:.4f}  log loss {m['log_loss']:.4f}  Brier {m['brier']:.4f}  "
        f"ECE {m['ece']:.4f}",
        f"speed      {summary['seconds']}s  ({summary['events_per_second'] or 0:,} lines/s)",
    ]
    q = summary.get("alert_quality")
    if q:
        lead = q["median_lead_days"]
        lines.append(f"alerts vs truth  precision {q['precision']:.3f}  recall {q['recall']:.3f}  "
                     f"median lead {lead:.1f} days" if lead is not None else
                     f"alerts vs truth  precision {q['precision']:.3f}  recall {q['recall']:.3f}")
    print("\n".join(lines), file=sys.stderr)
