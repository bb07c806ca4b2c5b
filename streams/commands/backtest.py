"""``arscore backtest EVENTS.jsonl --eval-from DATE -o DIR``: how good would arscore have been?

Usage::

    arscore backtest events.jsonl --eval-from 2024-12-31 -o bt/ \\
        --ground-truth events.truth.json --baseline
    # -> bt/metrics.json, bt/report.html, and a summary on stderr

The events run through the live engine (see :mod:`models.tools.backtest`); the online
model is scored on its predictions at issue for invoices issued on/after the
evaluation date. With ``--baseline``, scikit-learn models trained on the labels
resolved before that date are scored on the same invoices. The HTML report is one
self-contained file with inline SVG plots.
"""

from __future__ import annotations

import argparse
import html
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.model import PIPELINES, OnlineModel
from models.processor import iso
from models.tools import backtest as bt
from models.tools import baselines
from models.tools.ledger import parse_time
from schemas.codec import DecodeError, dumps, loads
from schemas.events import Event, decode_event
from streams.cli import CliError
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
        metrics[kind] = {"trained_on": len(x_train), **bt.record_metrics(test, p)}
        roc[kind] = bt.roc_points([r.y or 0 for r in test], p)
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
        **bt.record_metrics(split.test),
        "progressive_all_labels": model.progressive.summary(),
    }
    series: dict[str, Any] = {"roc": {"online": bt.roc_points([r.y or 0 for r in split.test],
                                                              [r.p for r in split.test])}}
    if args.baseline:
        metrics["baselines"], roc = _baselines(split)
        series["roc"].update(roc)
    if truth is not None:
        metrics["alerts"] = bt.alert_report(data.alerts, truth, eval_from)
    if args.check_leakage:
        audit = bt.audit_snapshots((e for _, e in EventFile(args.events)), cfg)
        metrics["leakage_check"] = {"checked": audit.checked,
                                    "mismatches": len(audit.mismatches),
                                    "examples": audit.mismatches[:5]}
    metrics["score_over_time"] = bt.scores_by_month(data.records)
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


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_summary(metrics: dict[str, Any], out: Path) -> None:
    c = metrics["counts"]
    rows = [("online " + metrics["model"]["kind"], metrics)]
    rows += [(f"batch {k}", v) for k, v in metrics.get("baselines", {}).items() if "error" not in v]
    lines = [
        f"backtest   eval from {metrics['eval_from']} to {metrics['stream_end']}: "
        f"{c['scored']:,} invoices scored ({c['censored']:,} too recent to label), "
        f"late rate {metrics['late_rate']:.3f}"
        + (f"; baselines trained on {c['train_labels']:,}" if "baselines" in metrics else ""),
        f"{'model':<16}{'ROC AUC':>9}{'PR AUC':>9}{'logloss':>9}{'Brier':>9}{'ECE':>9}"
        f"{'top10%':>9}{'top20%':>9}",
    ]
    for name, m in rows:
        lines.append(f"{name:<16}{_fmt(m['roc_auc']):>9}{_fmt(m['pr_auc']):>9}"
                     f"{_fmt(m['log_loss']):>9}{_fmt(m['brier']):>9}{_fmt(m['ece']):>9}"
                     f"{_fmt(m['capture_top10'], 3):>9}{_fmt(m['capture_top20'], 3):>9}")
    for kind, v in metrics.get("baselines", {}).items():
        if "error" in v:
            lines.append(f"batch {kind}: {v['error']}")
    a = metrics.get("alerts")
    if a:
        lead = a["median_lead_days"]
        lines.append(f"alerts     precision {a['precision']:.3f}  recall {a['recall']:.3f}  "
                     f"median lead {_fmt(lead, 1)} days  ({a['hits']}/{a['positives']} "
                     "customers reaching 30 DPD in the eval window)")
    leak = metrics.get("leakage_check")
    if leak:
        lines.append(f"leakage    {leak['checked']:,} snapshots checked, "
                     f"{leak['mismatches']:,} differ from the features at issue")
    lines.append(f"written    {out / 'metrics.json'}, {out / 'report.html'}")
    print("\n".join(lines), file=sys.stderr)


# --- the HTML report: inline SVG, no plotting dependency ---------------------------------------

COLORS = {"online": "#1f6fb4", "logreg": "#e07b1a", "gbm": "#2a9d3a"}
W, H, PAD = 420, 300, 44


class Plot:
    """A minimal x/y chart in SVG: linear axes, ticks, lines, bands, bars and points."""

    def __init__(self, title: str, x: tuple[float, float], y: tuple[float, float],
                 x_label: str, y_label: str) -> None:
        self.x0, self.x1 = x
        self.y0, self.y1 = y
        self.parts: list[str] = [
            f'<text x="{W / 2}" y="16" text-anchor="middle" class="t">{html.escape(title)}'
            "</text>",
            f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle">{html.escape(x_label)}</text>',
            f'<text x="12" y="{H / 2}" text-anchor="middle" transform="rotate(-90 12 {H / 2})">'
            f"{html.escape(y_label)}</text>",
            f'<rect x="{PAD}" y="{PAD / 2}" width="{W - 1.5 * PAD}" height="{H - 1.5 * PAD}" '
            'fill="none" stroke="#999"/>',
        ]

    def sx(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return PAD + (v - self.x0) / span * (W - 1.5 * PAD)

    def sy(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return H - PAD + (self.y0 - v) / span * (H - 1.5 * PAD)

    def ticks(self, xs: list[tuple[float, str]], ys: list[tuple[float, str]]) -> None:
        for v, label in xs:
            self.parts.append(f'<text x="{self.sx(v):.1f}" y="{H - PAD + 14}" '
                              f'text-anchor="middle">{html.escape(label)}</text>')
        for v, label in ys:
            self.parts.append(f'<text x="{PAD - 4}" y="{self.sy(v) + 4:.1f}" '
                              f'text-anchor="end">{html.escape(label)}</text>')

    def line(self, points: list[tuple[float, float]], color: str, dash: str = "",
             width: float = 1.8) -> None:
        if len(points) < 2:
            return
        d = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in points)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                          f'stroke-width="{width}"{extra}/>')

    def band(self, lower: list[tuple[float, float]], upper: list[tuple[float, float]],
             color: str) -> None:
        pts = upper + lower[::-1]
        d = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in pts)
        self.parts.append(f'<polygon points="{d}" fill="{color}" fill-opacity="0.18" '
                          'stroke="none"/>')

    def points(self, points: list[tuple[float, float]], color: str, r: float = 3.2) -> None:
        for x, y in points:
            self.parts.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="{r}" '
                              f'fill="{color}"/>')

    def bars(self, bars: list[tuple[float, float, float]], color: str) -> None:
        """(left, right, height) rectangles from the x axis."""
        for lo, hi, h in bars:
            top = self.sy(h)
            self.parts.append(f'<rect x="{self.sx(lo):.1f}" y="{top:.1f}" '
                              f'width="{max(self.sx(hi) - self.sx(lo) - 1, 1):.1f}" '
                              f'height="{self.sy(self.y0) - top:.1f}" fill="{color}"/>')

    def legend(self, items: list[tuple[str, str]], corner: str = "top") -> None:
        """Colour keys on a white card, in the top-left or bottom-right corner."""
        width = 18 + 6.8 * max((len(name) for name, _ in items), default=0)
        height = 14 * len(items) + 6
        x = PAD + 6 if corner == "top" else W - PAD / 2 - width - 6
        y0 = PAD / 2 + 6 if corner == "top" else H - PAD - height - 6
        self.parts.append(f'<rect x="{x}" y="{y0}" width="{width:.0f}" height="{height}" '
                          'fill="#fff" fill-opacity="0.85" stroke="#ddd"/>')
        for i, (name, color) in enumerate(items):
            y = y0 + 14 + 14 * i
            self.parts.append(f'<rect x="{x + 4}" y="{y - 9}" width="10" height="10" '
                              f'fill="{color}"/><text x="{x + 18}" y="{y}">'
                              f"{html.escape(name)}</text>")

    def svg(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
                f'viewBox="0 0 {W} {H}">' + "".join(self.parts) + "</svg>")


def _unit_ticks() -> list[tuple[float, str]]:
    return [(v / 5, f"{v / 5:.1f}") for v in range(6)]


def _thin(points: list[tuple[float, float]], keep: int = 400) -> list[tuple[float, float]]:
    step = max(1, len(points) // keep)
    return points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])


def roc_svg(curves: dict[str, list[tuple[float, float]]]) -> str:
    plot = Plot("ROC curve (invoices issued on/after eval date)", (0, 1), (0, 1),
                "false positive rate", "true positive rate")
    plot.ticks(_unit_ticks(), _unit_ticks())
    plot.line([(0, 0), (1, 1)], "#bbb", dash="4 4", width=1)
    for name, pts in curves.items():
        plot.line(_thin(pts), COLORS.get(name, "#555"))
    plot.legend([(n, COLORS.get(n, "#555")) for n in curves], corner="bottom")
    return plot.svg()


def reliability_svg(tables: dict[str, list[dict[str, Any]]]) -> str:
    plot = Plot("Reliability (10 bins)", (0, 1), (0, 1), "mean predicted P(late)",
                "observed late rate")
    plot.ticks(_unit_ticks(), _unit_ticks())
    plot.line([(0, 0), (1, 1)], "#bbb", dash="4 4", width=1)
    for name, table in tables.items():
        pts = [(r["mean_p"], r["observed"]) for r in table if r["n"]]
        plot.line(pts, COLORS.get(name, "#555"), width=1.2)
        plot.points(pts, COLORS.get(name, "#555"))
    plot.legend([(n, COLORS.get(n, "#555")) for n in tables])
    return plot.svg()


def over_time_svg(months: list[dict[str, Any]], eval_month: str) -> str:
    n = len(months)
    plot = Plot("Online P(late) at issue by month", (-0.5, max(n - 0.5, 0.5)), (0, 1),
                "month of issue", "P(late)")
    step = max(1, n // 6)
    plot.ticks([(i, m["month"]) for i, m in enumerate(months) if i % step == 0],
               _unit_ticks())
    plot.band([(i, m["p10"]) for i, m in enumerate(months)],
              [(i, m["p90"]) for i, m in enumerate(months)], COLORS["online"])
    plot.line([(i, m["mean"]) for i, m in enumerate(months)], COLORS["online"])
    plot.line([(i, m["p50"]) for i, m in enumerate(months)], COLORS["online"], dash="3 3",
              width=1)
    # months with most invoices still unlabelled would show a biased (too low) late rate
    plot.points([(i, m["late_rate"]) for i, m in enumerate(months)
                 if m["late_rate"] is not None and m["labelled"] * 2 >= m["n"]], "#c0392b",
                r=2.5)
    cut = next((i for i, m in enumerate(months) if m["month"] >= eval_month), None)
    if cut is not None:
        plot.line([(cut - 0.5, 0), (cut - 0.5, 1)], "#777", dash="2 3", width=1)
    plot.legend([("mean (band p10-p90, dashed median)", COLORS["online"]),
                 ("observed late rate (labelled)", "#c0392b")], corner="bottom")
    return plot.svg()


def lead_svg(leads: list[float], width_days: float = 7.0) -> str:
    top = max(leads, default=width_days)
    bins = [0] * (int(top // width_days) + 1)
    for v in leads:
        bins[int(v // width_days)] += 1
    plot = Plot("Lead time: first high-risk alert -> 30 days past due", (0, len(bins) * width_days),
                (0, max(bins, default=1) or 1), "days of warning", "customers")
    plot.ticks([(i * width_days * 4, f"{i * width_days * 4:.0f}")
                for i in range(len(bins) // 4 + 1)],
               [(v, str(v)) for v in {0, max(bins, default=0)}])
    plot.bars([(i * width_days, (i + 1) * width_days, c) for i, c in enumerate(bins)],
              COLORS["online"])
    return plot.svg()


def _metric_rows(metrics: dict[str, Any]) -> str:
    models = [("online " + metrics["model"]["kind"], metrics)]
    models += [(f"batch {k}", v) for k, v in metrics.get("baselines", {}).items()
               if "error" not in v]
    keys = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "capture_top10", "capture_top20")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(m.get(k))}</td>" for k in keys)
        + "</tr>" for name, m in models)
    return f"<table><tr><th>model</th>{head}</tr>{body}</table>"


def _reliability_rows(table: list[dict[str, Any]]) -> str:
    body = "".join(f"<tr><td>{r['lo']:.1f}-{r['hi']:.1f}</td><td>{r['n']:,}</td>"
                   f"<td>{_fmt(r['mean_p'], 3)}</td><td>{_fmt(r['observed'], 3)}</td></tr>"
                   for r in table)
    return ("<table><tr><th>bin</th><th>invoices</th><th>mean predicted</th>"
            f"<th>observed</th></tr>{body}</table>")


def _kv(d: dict[str, Any]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}"
                               "</td></tr>" for k, v in d.items()) + "</table>"


def render_report(metrics: dict[str, Any], series: dict[str, Any], argv: list[str]) -> str:
    """One self-contained HTML page: tables and inline SVG plots."""
    tables = {"online": metrics["reliability"]}
    tables.update({k: v["reliability"] for k, v in metrics.get("baselines", {}).items()
                   if "error" not in v})
    plots = [roc_svg(series["roc"]), reliability_svg(tables),
             over_time_svg(metrics["score_over_time"], metrics["eval_from"][:7])]
    sections = [
        "<h2>Predictions at issue, invoices issued on/after the evaluation date</h2>",
        _metric_rows(metrics), _kv(metrics["counts"]),
    ]
    alerts = metrics.get("alerts")
    if alerts:
        plots.append(lead_svg(alerts["lead_days"]))
        sections += ["<h2>Alerts against ground truth (evaluation window)</h2>",
                     _kv({k: v for k, v in alerts.items()
                          if k not in ("lead_days", "full_stream", "window")}),
                     "<p>Whole stream (as <code>arscore replay</code> reports it):</p>",
                     _kv(alerts["full_stream"])]
    sections += ["<h2>Reliability of the online model</h2>",
                 _reliability_rows(metrics["reliability"])]
    for kind, v in metrics.get("baselines", {}).items():
        if "error" in v:
            sections.append(f"<p>batch {html.escape(kind)}: {html.escape(v['error'])}</p>")
    style = ("body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
             "table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
             "svg{margin:6px;border:1px solid #eee}svg text{font-size:11px}"
             "svg text.t{font-size:12px;font-weight:600}")
    command = " ".join(shlex.quote(a) for a in ["arscore", *argv[1:]])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>arscore backtest</title>"
        f"<style>{style}</style></head><body><h1>arscore backtest</h1>"
        f"<p>Model {html.escape(metrics['model']['version'])}; evaluation from "
        f"{html.escape(metrics['eval_from'])} to {html.escape(metrics['stream_end'])}.</p>"
        f"<p><code>{html.escape(command)}</code></p>"
        f"<div>{''.join(plots)}</div>{''.join(sections)}</body></html>\n"
    )
