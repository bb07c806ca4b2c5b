"""``arscore bootstrap EVENTS.jsonl -o CHECKPOINT``: learn from history before going live.

Usage::

    arscore import-ledger export.csv -o history.jsonl --currency EUR
    arscore bootstrap history.jsonl -o model.ckpt            # -> model.ckpt, model.ckpt.meta.json
    arscore replay live.jsonl --warm-start model.ckpt          # or ARSCORE_WARM_START=model.ckpt

The history runs through the same engine as live traffic (predict at issue, learn
when each label resolves), so the checkpoint has learned exactly what a worker
running over that history would have. The model is named after the checkpoint
(``logreg:model``), so every score it produces says where it started. A small JSON
file beside the checkpoint records what it saw (labels, last event time) so that
``arscore backtest --warm-start`` can refuse a checkpoint that saw the evaluation
period.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from models.model import PIPELINES
from models.processor import iso
from models.tools.backtest import BacktestRun
from models.tools.ledger import parse_time
from schemas.codec import dumps
from streams.cli import CliError
from streams.commands.backtest import EventFile, settings_for
from streams.commands.replay import load_models
from streams.progress import Progress


def register(sub: Any) -> None:
    p = sub.add_parser("bootstrap", help="train the model on an event history; write a checkpoint",
                       description="Run an event history through the engine, learning every "
                                   "label as it resolves, and write the model checkpoint that "
                                   "replay --warm-start and the worker (ARSCORE_WARM_START) load.")
    p.add_argument("events", help="JSONL event file (arscore simulate / import-ledger)")
    p.add_argument("-o", "--output", required=True, metavar="CHECKPOINT",
                   help="checkpoint file to write")
    p.add_argument("--model", metavar="KIND", default=None,
                   help=f"pipeline: {', '.join(PIPELINES)} (default ARSCORE_MODEL_KIND)")
    p.add_argument("--until", metavar="DATE", default=None,
                   help="learn only from events before this time (e.g. the backtest's "
                        "--eval-from)")
    p.add_argument("--warm-start", metavar="CKPT", help="continue from an earlier checkpoint")
    p.set_defaults(func=run)


def _until(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text, None).timestamp()
    except ValueError as exc:
        raise CliError(f"bootstrap: --until {exc}") from None


def run(args: argparse.Namespace) -> int:
    settings = settings_for("bootstrap", args.model)
    until = _until(args.until)
    model = load_models(settings, 1, args.warm_start)[0]
    before = model.labels_seen
    reorder = settings.reorder_seconds
    run_ = BacktestRun(settings.scoring(), model, reorder_seconds=reorder)
    source = EventFile(args.events, Progress("bootstrap"))
    used = 0
    for no, event in source:
        if until is not None and event.at.timestamp() >= until:
            continue
        run_.submit(event, no)
        used += 1
    if source.progress is not None:
        source.progress.close()
    data = run_.finish()
    if used == 0:
        raise CliError("bootstrap: no events to learn from"
                       + (" before --until" if until is not None else ""))
    out = Path(args.output)
    model.origin = out.stem
    out.write_bytes(model.to_bytes())
    meta: dict[str, Any] = {"version": model.version, "kind": model.kind, "labels_seen": model.labels_seen,
            "labels_learned": model.labels_seen - before, "events": used,
            "last_event_at": iso(data.end), "source": str(args.events),
            "progressive": model.progressive.summary()}
    Path(f"{out}.meta.json").write_bytes(dumps(meta) + b"\n")
    m = meta["progressive"]
    print(f"bootstrap: {used:,} events, {meta['labels_learned']:,} labels learned "
          f"({model.labels_seen:,} in total), last event {meta['last_event_at']}; "
          f"progressive ROC AUC {m['roc_auc']:.4f}, ECE {m['ece']:.4f}\n"
          f"checkpoint {out} ({out.stat().st_size:,} bytes), version {model.version}",
          file=sys.stderr)
    return 0
