"""The JSON API (FastAPI; its OpenAPI document is at ``/openapi.json``, docs at ``/docs``)
and the application factory that puts API, pages and auth together.

Every bad parameter is a 400 with a one-line ``{"error": ...}``; an unknown customer
is a 404. Reads go straight to the database, which the consumer keeps current.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from streams.worklist import auth, queries
from streams.worklist.config import WebConfig

Band = Literal["low", "medium", "high", "critical"]
Treatment = Literal["none", "friendly_reminder", "call", "escalate", "credit_hold"]
AlertKind = Literal["entered_high_risk", "risk_spike", "high_risk_overdue"]
SortKey = Literal["priority", "-priority", "p_late", "-p_late", "overdue", "-overdue",
                  "customer_id", "-customer_id"]
HealthFn = Callable[[], dict[str, Any]]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _one_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return f"{where}: {first.get('msg', 'invalid')}".replace("\n", " ")[:300]


def worklist_query(
    band: Annotated[list[Band] | None, Query(description="only these bands")] = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
    treatment: Annotated[list[Treatment] | None, Query()] = None,
    low_confidence: Annotated[bool | None, Query()] = None,
    min_priority: Annotated[float | None, Query(ge=0, description="minimum money at risk")] = None,
    q: Annotated[str | None, Query(max_length=128, description="text in the customer id")] = None,
    sort: Annotated[SortKey, Query(description="sort key; prefix - for descending")] = "-priority",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> queries.WorklistQuery:
    """The worklist's query parameters, validated (shared by the API and the pages)."""
    return queries.WorklistQuery(band=tuple(band or ()), currency=currency,
                                 treatment=tuple(treatment or ()), low_confidence=low_confidence,
                                 min_priority=min_priority, q=q or None, sort=sort, limit=limit,
                                 cursor=cursor or None)


WorklistParams = Annotated[queries.WorklistQuery, Depends(worklist_query)]


def create_app(engine: Engine, config: WebConfig, health: HealthFn) -> FastAPI:
    """The whole web service: API, pages, static files, auth, error handlers."""
    from streams.worklist.pages import add_pages

    app = FastAPI(title="arscore worklist", version="1",
                  description="Collections worklist materialised from ar.scores and ar.alerts.")

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc)}, status_code=400)

    @app.exception_handler(queries.QueryError)
    async def _bad_query(_request: Request, exc: queries.QueryError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.middleware("http")(auth.middleware(config.token))

    @app.get("/api/worklist", tags=["worklist"],
             summary="Customers ranked by money at risk (latest score each), filtered and paged")
    def api_worklist(query: WorklistParams) -> dict[str, Any]:
        return queries.worklist(engine, query)

    @app.get("/api/customers/{customer_id:path}", tags=["worklist"],
             summary="One customer: latest score with reasons, score history, alerts",
             responses={404: {"description": "no score for this customer"}})
    def api_customer(customer_id: Annotated[str, Path(max_length=128)]) -> dict[str, Any]:
        found = queries.customer(engine, customer_id)
        if found is None:
            raise HTTPException(404, "no score for this customer")
        return found

    @app.get("/api/alerts", tags=["alerts"], summary="Recent alerts, newest first")
    def api_alerts(kind: Annotated[list[AlertKind] | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   cursor: Annotated[str | None, Query(max_length=1000)] = None) -> dict[str, Any]:
        return queries.recent_alerts(engine, tuple(kind or ()), limit, cursor)

    @app.get("/api/health", tags=["health"],
             summary="Consumer state and lag; 503 while the consumer cannot apply records")
    def api_health() -> JSONResponse:
        consumer = health()
        body = {"status": "ok" if consumer["state"] == "ok" else consumer["state"],
                "consumer": consumer, "database": config.dialect,
                **queries.view_stats(engine)}
        return JSONResponse(body, status_code=503 if consumer["state"] == "error" else 200)

    add_pages(app, engine, config)
    return app
