"""Server-rendered pages: the worklist, a customer page, the alerts feed, the login form.

Plain HTML from Jinja2 templates with autoescaping on, so every text that came from an
event (customer ids, reasons, alert messages) is shown as text. Pages refresh their live
part by fetching a server-rendered fragment (``/fragments/...``) every few seconds from
``static/live.js``: no client-side templating, no third-party script. The customer chart
is an inline SVG computed here (one circle per score, one marker per alert).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine

from streams.worklist import auth, queries
from streams.worklist.api import WorklistParams
from streams.worklist.config import WebConfig

HERE = Path(__file__).resolve().parent
CHART_W, CHART_H, PAD = 720, 240, 36


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["url_id"] = lambda cid: quote(str(cid), safe="")
    env.filters["pct"] = lambda p: f"{100 * float(p):.0f}%"
    env.filters["day"] = lambda ts: str(ts)[:10]
    return env


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def chart(history: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """SVG geometry for p_late over time: a point per score, a marker per alert.

    >>> c = chart([{"scored_at": "2025-01-01T00:00:00Z", "p_late": 0.5, "band": "medium"}], [])
    >>> len(c["points"]), c["points"][0]["y"]
    (1, 120.0)
    """
    times = [_ts(h["scored_at"]) for h in history] + [_ts(a["raised_at"]) for a in alerts]
    lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
    span = (hi - lo) or 1.0

    def x(t: float) -> float:
        return round(PAD + (t - lo) / span * (CHART_W - 2 * PAD), 1)

    def y(p: float) -> float:
        return round(CHART_H - PAD - p * (CHART_H - 2 * PAD), 1)

    points = [{"x": x(_ts(h["scored_at"])), "y": y(h["p_late"]), "p_late": h["p_late"],
               "at": h["scored_at"], "band": h["band"]} for h in history]
    marks = [{"x": x(_ts(a["raised_at"])), "kind": a["kind"], "at": a["raised_at"],
              "message": a["message"]} for a in alerts]
    return {"w": CHART_W, "h": CHART_H, "pad": PAD, "points": points, "marks": marks,
            "line": " ".join(f"{p['x']},{p['y']}" for p in points),
            "grid": [{"y": y(v), "label": f"{v:.2f}"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
            "first": history[0]["scored_at"][:10] if history else "",
            "last": history[-1]["scored_at"][:10] if history else ""}


def add_pages(app: FastAPI, engine: Engine, config: WebConfig) -> None:
    """Register the HTML routes (excluded from the OpenAPI document)."""
    env = _env()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(auth_enabled=bool(config.token), **context)
        return HTMLResponse(html, status_code=status)

    def query_string(request: Request, drop: tuple[str, ...] = ("cursor",)) -> str:
        return urlencode([(k, v) for k, v in request.query_params.multi_items() if k not in drop])

    def worklist_context(request: Request, query: queries.WorklistQuery) -> dict[str, Any]:
        page = queries.worklist(engine, query)
        qs = query_string(request)
        return {"page": page, "query": query, "qs": qs, "request_query": request.url.query,
                "next_url": f"/?{qs}&cursor={page['next_cursor']}" if page["next_cursor"] else None}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page(request: Request, query: WorklistParams) -> HTMLResponse:
        return render("worklist.html", **worklist_context(request, query), active="worklist")

    @app.get("/fragments/worklist", response_class=HTMLResponse, include_in_schema=False)
    def worklist_rows(request: Request, query: WorklistParams) -> HTMLResponse:
        return render("worklist_rows.html", **worklist_context(request, query))

    def customer_context(customer_id: str) -> dict[str, Any] | None:
        found = queries.customer(engine, customer_id)
        if found is None:
            return None
        return {"c": found, "chart": chart(found["history"], found["alerts"]),
                "cid": customer_id}

    @app.get("/customers/{customer_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def customer_page(customer_id: str) -> HTMLResponse:
        context = customer_context(customer_id)
        if context is None:
            return render("not_found.html", status=404, cid=customer_id, active="")
        return render("customer.html", **context, active="")

    @app.get("/fragments/customers/{customer_id:path}", response_class=HTMLResponse,
             include_in_schema=False)
    def customer_fragment(customer_id: str) -> HTMLResponse:
        context = customer_context(customer_id)
        if context is None:
            return HTMLResponse("", status_code=404)
        return render("customer_body.html", **context)

    def alerts_context(kind: str | None) -> dict[str, Any]:
        kinds = (kind,) if kind in ("entered_high_risk", "risk_spike", "high_risk_overdue") else ()
        return {"alerts": queries.recent_alerts(engine, kinds, limit=100)["items"],
                "kind": kinds[0] if kinds else ""}

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(kind: str | None = None) -> HTMLResponse:
        return render("alerts.html", **alerts_context(kind), active="alerts")

    @app.get("/fragments/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_fragment(kind: str | None = None) -> HTMLResponse:
        return render("alerts_rows.html", **alerts_context(kind))

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(next: str | None = None) -> HTMLResponse:
        return render("login.html", next=auth.safe_next(next), error="", active="")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        from urllib.parse import parse_qs

        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        given = form.get("token", [""])[0]
        target = auth.safe_next(form.get("next", ["/"])[0])
        if not config.token or not auth.token_matches(config.token, given):
            return render("login.html", status=401, next=target, error="That token is not right.",
                          active="")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(auth.COOKIE, auth.session_value(config.token), httponly=True,
                            samesite="strict", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/")
        return response
