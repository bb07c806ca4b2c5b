"""The worklist HTTP surface in-process (FastAPI TestClient over a SQLite file): one-line
4xx errors, 404s, the OpenAPI document, escaping, security headers and token auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_worklist_store import score

from schemas.codec import dumps
from streams.settings import Settings
from streams.worklist.api import create_app
from streams.worklist.config import web_config
from streams.worklist.records import score_row
from streams.worklist.store import Batch, apply_batch, open_store

EVIL = "<script>alert(1)</script>"


def client(tmp_path: Path, token: str = "") -> TestClient:
    url = f"sqlite:///{tmp_path / 'wl.db'}"
    engine = open_store(url)
    doc = score("<b>bold</b>", "e1", "2025-01-01T00:00:00Z", "12.50")
    doc["reasons"] = [{"code": "x", "text": EVIL, "weight": 1.0}]
    apply_batch(engine, Batch(scores=[score_row(dumps(doc)),
                                      score_row(dumps(score("A/B?c#d", "e2",
                                                            "2025-01-02T00:00:00Z", "1.00")))]))
    config = web_config(Settings(), {"ARSCORE_DATABASE_URL": url, "ARSCORE_WEB_TOKEN": token})
    health = {"state": "ok", "problem": "", "group": "g", "lag": {}, "total_lag": 0}
    return TestClient(create_app(engine, config, lambda: health))


@pytest.mark.parametrize(("path", "field"), [
    ("/api/worklist?limit=0", "limit"), ("/api/worklist?limit=x", "limit"),
    ("/api/worklist?band=extreme", "band"), ("/api/worklist?sort=money", "sort"),
    ("/api/worklist?min_priority=-1", "min_priority"), ("/api/worklist?currency=eur", "currency"),
    ("/api/worklist?low_confidence=maybe", "low_confidence"),
    ("/api/worklist?cursor=abc", "cursor"), ("/api/alerts?kind=paged", "kind"),
])
def test_bad_parameters_get_a_400_with_one_line_naming_them(tmp_path: Path, path: str,
                                                            field: str) -> None:
    r = client(tmp_path).get(path)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith(field) and "\n" not in error


def test_customers_found_by_any_id_and_unknown_ones_are_404(tmp_path: Path) -> None:
    c = client(tmp_path)
    assert c.get("/api/customers/A%2FB%3Fc%23d").json()["latest"]["customer_id"] == "A/B?c#d"
    assert c.get("/api/customers/nobody").status_code == 404
    assert c.get("/api/customers/nobody").json() == {"error": "no score for this customer"}
    assert c.get("/customers/nobody").status_code == 404


def test_openapi_lists_the_api(tmp_path: Path) -> None:
    paths = client(tmp_path).get("/openapi.json").json()["paths"]
    assert {"/api/worklist", "/api/customers/{customer_id}", "/api/alerts",
            "/api/health"} <= set(paths)
    assert "/" not in paths  # pages stay out of the API document


def test_pages_escape_event_text_and_send_a_strict_policy(tmp_path: Path) -> None:
    c = client(tmp_path)
    for path in ("/", "/fragments/worklist", "/customers/%3Cb%3Ebold%3C%2Fb%3E"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "<b>bold</b>" not in r.text and "&lt;b&gt;bold&lt;/b&gt;" in r.text
        assert EVIL not in r.text
        assert "script-src" not in r.headers["content-security-policy"]  # default-src 'self'
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]


def test_health_reports_lag_and_counts(tmp_path: Path) -> None:
    body: dict[str, Any] = client(tmp_path).get("/api/health").json()
    assert body["status"] == "ok" and body["customers"] == 2 and body["consumer"]["total_lag"] == 0


def test_with_a_token_everything_but_login_needs_it(tmp_path: Path) -> None:
    c = client(tmp_path, token="s3cret")
    assert c.get("/api/worklist").status_code == 401
    assert c.get("/api/worklist", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/worklist", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = c.get("/customers/A", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert c.get("/login").status_code == 200 and c.get("/static/style.css").status_code == 200
    bad = c.post("/login", content="token=wrong&next=/", follow_redirects=False,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 401
    ok = c.post("/login", content="token=s3cret&next=//evil.example/", follow_redirects=False,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert "s3cret" not in ok.headers["set-cookie"] and "HttpOnly" in ok.headers["set-cookie"]
    assert c.get("/api/worklist").status_code == 200  # the cookie now set in the client


def test_database_url_password_never_shown() -> None:
    config = web_config(Settings(), {"ARSCORE_DATABASE_URL": "postgresql://u:pw@db/x"})
    assert "pw" not in repr(config) and config.safe_database == "postgresql://db/x"
    with pytest.raises(ValueError, match="ARSCORE_WORKLIST_PORT"):
        web_config(Settings(), {"ARSCORE_WORKLIST_PORT": "http"})
