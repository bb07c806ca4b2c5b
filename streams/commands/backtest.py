"""``arscore backtest EVENTS.jsonl --eval-from DATE -o DIR``: how good would arscore have been?

Usage::

    arscore backtest events.jsonl --eval-from 2024-12-31 -o bt/ \\
        --ground-truth events.truth.json --baseline
    # -> bt/metrics.json, bt/report.html, and a summary on stderr

The events run through the live engine (see :mod:`models.tools.backtest`); the online
model is scored on its predictions at issue for invoices issued on/after the
evaluation date (:mod:`models.tools.report`). With ``--baseline``, scikit-learn models
trained on the labels resolved before that date are scored on the same invoices. This
module handles the arguments and runs; :mod:`streams.commands.backtest_report` prints
the summary and renders the HTML report, one self-contained file with inline SVG plots.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.metrics import roc_points
from models.model import PIPELINES, OnlineModel
from models.processor import iso
from models.tools import backtest as bt
from models.tools import baselines, leakage, report
from models.tools.ledger import parse_time
from schemas.codec import DecodeError, dumps, loads
from schemas.events import Event, decode_event
from streams.cli import CliError
from streams.commands.backtest_report import print_summary, render_report
from streams.commands.replay import load_models
from streams.progress import Progress
from streams.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("backtest", help="score an event history as if arscore had run on it",
                       description="Run an event file through the live engine and measure the "
                                   "predictions made at issue for invoices issued on/after "
                                   "--eval-from (ROC AUC, PR AUC, log loss, Brier, ECE, "
                                   "capture of late money), optionally against batch "
                                   "baselines and the simulator's ground truth.")
    p.add_argument("events", help="JSONL event file (arscore simulate / import-ledger)")
    p.add_argument("--eval-from", required=True, metavar="DATE",
                   help="first issue date scored (ISO date or time; UTC if no zone)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for metrics.json and report.html")
    p.add_argument("--ground-truth", metavar="FILE", help="simulator truth: alert quality")
    p.add_argument("--baseline", action="store_true",
                   help="also fit batch baselines (scikit-learn logistic regression and "
                        "gradient boosting; needs the 'baseline' extra)")
    p.add_argument("--model", metavar="KIND", default=None,
                   help=f"online pipeline: {', '.join(PIPELINES)} (default ARSCORE_MODEL_KIND)")
    p.add_argument("--warm-start", metavar="CKPT", help="start from a bootstrap checkpoint")
    p.add_argument("--reorder-hours", type=float, default=None,
                   help="event-time reorder window (default: ARSCORE_REORDER_SECONDS)")
    p.add_argument("--check-leakage", action="store_true",
                   help="re-run the events and check every snapshot equals the features "
                        "as of issue (slower)")
    p.set_defaults(func=run)


# --- inputs ------------------------------------------------------------------------------


def settings_for(command: str, kind: str | None) -> Settings:
    """Settings from the environment, with ``--model KIND`` (checked) taking precedence."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if kind is not None:
        if kind not in PIPELINES:
            raise CliError(f"{command}: unknown --model {kind!r}; known: {', '.join(PIPELINES)}")
        settings = settings.with_changes(model_kind=kind)
    return settings


def _eval_from(text: str) -> float:
    try:
        return parse_time(text, None).timestamp()
    except ValueError as exc:
        raise CliError(f"backtest: --eval-from {exc}") from None


def _model(settings: Settings, args: argparse.Namespace, eval_from: float) -> OnlineModel:
    """The online model; a checkpoint that saw events after --eval-from would leak."""
    model = load_models(settings, 1, args.warm_start)[0]
    if args.warm_start:
        if args.model is not None and args.model != model.kind:
            raise CliError(f"backtest: --model {args.model} but the checkpoint is a "
                           f"{model.kind} model")
        meta = checkpoint_meta(args.warm_start)
        last = meta.get("last_event_at") if meta else None
        if last is None:
            print("arscore: warning: no metadata beside the checkpoint; make sure it saw no "
                  "events after --eval-from", file=sys.stderr)
        elif parse_time(str(last), None).timestamp() >= eval_from:
            raise CliError(f"backtest: the checkpoint has seen events up to {last}, on/after "
                           "--eval-from: the backtest would score what it learned from "
                           "(bootstrap with --until)")
    return model


def checkpoint_meta(path: str) -> dict[str, Any] | None:
    """The JSON written beside a checkpoint by ``arscore bootstrap``, if any."""
    meta = Path(f"{path}.meta.json")
    if not meta.is_file():
        return None
    try:
        value = loads(meta.read_bytes(), max_bytes=None)
    except DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _truth(path: str | None) -> dict[str, float | None] | None:
    if not path:
        return None
    from models.tools.evaluation import truth_times

    try:
        return truth_times(loads(Path(path).read_bytes(), max_bytes=None))
    except (OSError, DecodeError, AttributeError, ValueError) as exc:
        raise CliError(f"backtest: cannot read ground truth {path}: {exc}") from None


class EventFile:
    """Decoded events of a JSONL file with their line numbers; bad lines reported and skipped."""

    def __init__(self, path: str, progress: Progress | None = None) -> None:
        if not Path(path).is_file():
            raise CliError(f"backtest: no such event file: {path}")
        self.path = path
        self.progress = progress
        self.lines = 0
        self.bad = 0

    def __iter__(self) -> Iterator[tuple[int, Event]]:
        with open(self.path, "rb") as fh:
            for no, raw in enumerate(fh, start=1):
                self.lines = no
                if self.progress is not None:
                    self.progress.update(no)
                if not raw.strip():
                    continue
                try:
                    yield no, decode_event(raw.rstrip(b"\r\n"))
                except DecodeError as exc:
                    self.bad += 1
                    print(f"arscore: {self.path}: line {no}: {exc}", file=sys.stderr)


# --- the run -----------------------------------------------------------------------------


def _baselines(split: bt.Split) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each baseline's metrics on the scored invoices, and its ROC points for the report."""
    x_train = [r.x for r in split.train if r.x is not None]
    y_train = [r.y or 0 for r in split.train if r.x is not None]
    test = [r for r in split.test if r.x is not None]
    metrics: dict[str, Any] = {}
    roc: dict[str, Any] = {}
    for kind in baselines.KINDS:
        try:
            p = baselines.fit_predict(kind, x_train, y_train, [r.x for r in test if r.x is not None])
        except baselines.BaselineUnavailable as exc:
            metrics[kind] = {"error": str(exc)}
            continue
        metrics[kind] = {"trained_on": len(x_train), **report.record_metrics(test, p)}
        roc[kind] = roc_points([r.y or 0 for r in test], p)
    return metrics, roc


def evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the backtest; returns metrics.json's content and extra series for the report."""
    settings = settings_for("backtest", args.model)
    cfg = settings.scoring()
    eval_from = _eval_from(args.eval_from)
    if args.baseline:
        try:
            baselines.require()
        except baselines.BaselineUnavailable as exc:
            raise CliError(f"backtest: {exc}") from None
    truth = _truth(args.ground_truth)
    model = _model(settings, args, eval_from)
    reorder = (args.reorder_hours * 3600 if args.reorder_hours is not None
               else settings.reorder_seconds)
    run = bt.BacktestRun(cfg, model, reorder_seconds=reorder)
    source = EventFile(args.events, Progress("backtest"))
    for no, event in source:
        run.submit(event, no)
    if source.progress is not None:
        source.progress.close()
    data = run.finish()
    split = bt.evaluation_split(data, eval_from)
    if not split.test:
        raise CliError("backtest: no invoice issued on/after --eval-from has a known label "
                       "(is the date inside the stream?)")
    metrics: dict[str, Any] = {
        "eval_from": iso(eval_from), "stream_end": iso(data.end),
        "model": {"kind": model.kind, "version": model.version,
                  "labels_seen": model.labels_seen},
        "events": {"lines": source.lines, "bad_lines": source.bad, **dict(data.outcomes)},
        "counts": {"invoices": len(data.records),
                   "labels": sum(r.y is not None for r in data.records),
                   "issued_after_eval": split.issued_after, "scored": len(split.test),
                   "censored": split.censored, "train_labels": len(split.train)},
        **report.record_metrics(split.test),
        "progressive_all_labels": model.progressive.summary(),
    }
    series: dict[str, Any] = {"roc": {"online": roc_points([r.y or 0 for r in split.test],
                                                              [r.p for r in split.test])}}
    if args.baseline:
        metrics["baselines"], roc = _baselines(split)
        series["roc"].update(roc)
    if truth is not None:
        metrics["alerts"] = report.alert_report(data.alerts, truth, eval_from)
    if args.check_leakage:
        audit = leakage.audit_snapshots((e for _, e in EventFile(args.events)), cfg)
        metrics["leakage_check"] = {"checked": audit.checked,
                                    "mismatches": len(audit.mismatches),
                                    "examples": audit.mismatches[:5]}
    metrics["score_over_time"] = report.scores_by_month(data.records)
    return metrics, series


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"backtest: cannot create {out}: {exc.strerror}") from None
    metrics, series = evaluate(args)
    (out / "metrics.json").write_bytes(dumps(metrics) + b"\n")
    (out / "report.html").write_text(render_report(metrics, series, sys.argv), encoding="utf-8")
    print_summary(metrics, out)
    return 1 if metrics.get("leakage_check", {}).get("mismatches") else 0
