"""What ``arscore backtest`` shows: the summary on stderr and the one-file HTML report.

Both read only the content of ``metrics.json`` (and the ROC points of each model), so the
report can be re-rendered from a saved run. Undefined metrics (NaN, or None in JSON) print
as ``-``.
"""

from __future__ import annotations

import html
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from streams.commands.svgplot import Plot

COLORS = {"online": "#1f6fb4", "logreg": "#e07b1a", "gbm": "#2a9d3a"}


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


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


# --- the HTML report: inline SVG plots ----------------------------------------------------


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
