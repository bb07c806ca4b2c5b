"""The worklist pages in a real browser: Playwright driving Debian's Chromium against a
real broker, a real worker and a real ``arscore web``.

Screenshots go to the test's temporary directory; with ``ARSCORE_SCREENSHOT_DIR=docs/img``
they are also written there (that is how the README's pictures are made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from schemas.codec import dumps, loads
from streams.broker import EmbeddedBroker
from streams.kafkaio import produce_lines
from tests.integration.conftest import Worker, worker_settings
from tests.integration.worklist_fixtures import Web, missing, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS_ID = "<img/src=x/onerror=alert(1)>"   # a valid id (no spaces) that is also live HTML
XSS_TEXT = "<img src=x onerror=alert(1)>"


def invoice(customer_id: str, at: str, amount: str = "250000.00") -> bytes:
    return dumps({"schema_version": 1, "type": "invoice.issued", "event_id": f"ev-{uuid.uuid4().hex}",
                  "customer_id": customer_id, "invoice_id": f"INV-{uuid.uuid4().hex[:8]}",
                  "amount": amount, "currency": "EUR", "issued_at": at, "due_at": at})


class Stack:
    """Broker + worker + ``arscore web`` fed with a simulated ledger, shared by the module."""

    def __init__(self, worker: Worker, web: Web, last_time: str) -> None:
        self.worker, self.web, self.last_time = worker, web, last_time

    def send(self, *lines: bytes) -> None:
        for _ in produce_lines(self.worker.settings, list(lines)):
            pass


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("browser")
    settings, env = worker_settings(broker, tmp)
    worker = Worker(settings, env, tmp / "worker.log").start()
    events = tmp / "events.jsonl"
    subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--customers", "60", "--days",
                    "200", "--seed", "5", "-o", str(events)], check=True, capture_output=True, env=env)
    lines = events.read_bytes().splitlines()
    last = max(v for line in lines for k, v in loads(line).items() if k.endswith("_at"))
    web = Web({**env, "ARSCORE_DATABASE_URL": f"sqlite:///{tmp / 'wl.db'}"}, tmp / "web.log")
    try:
        web.start()
        for _ in produce_lines(settings, [*lines, invoice(XSS_ID, last)]):
            pass
        # an alert from another producer whose message is live HTML
        from streams.kafkaio import producer

        prod = producer(settings)
        prod.send(settings.alerts_topic, key=b"C000001", value=dumps({
            "schema_version": 1, "alert_id": "xss-alert-1", "kind": "risk_spike",
            "customer_id": "C000001", "raised_at": last, "band": "high", "p_late": 0.8,
            "previous_p_late": 0.2, "priority": "10.00", "treatment": "call",
            "message": f"note {XSS_TEXT} end", "invoice_id": None, "reasons": []}))
        prod.flush()
        prod.close()
        wait_for(lambda: web.get(f"/api/customers/{quote(XSS_ID, safe='')}").get("latest")
                 if web.request(f"/api/customers/{quote(XSS_ID, safe='')}")[0] == 200 else None,
                 "the XSS customer's score in the view", timeout=90)
        wait_for(lambda: web.get("/api/health")["customers"] >= 61, "every customer in the view")
        yield Stack(worker, web, last)
    finally:
        web.stop()
        worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("ARSCORE_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    return path


def test_worklist_shows_the_apis_top_customers_in_order(stack: Stack, page: Any,
                                                        tmp_path: Path) -> None:
    api = [r["customer_id"] for r in stack.web.get("/api/worklist?limit=20")["items"]]
    page.goto(stack.web.url + "/")
    shown = page.locator("#rows tr[data-customer]").evaluate_all(
        "rows => rows.map(r => r.dataset.customer)")
    assert shown[:20] == api
    assert page.locator("#rows tr[data-customer] .band").first.inner_text() in (
        "low", "medium", "high", "critical")
    screenshot(page, tmp_path, "worklist.png")


def test_a_new_score_appears_without_a_reload(stack: Stack, page: Any) -> None:
    new_id = f"LIVE-{uuid.uuid4().hex[:6]}"
    page.goto(stack.web.url + f"/?q={new_id}")
    assert page.locator("#rows tr[data-customer]").count() == 0
    page.evaluate("window.__sameDocument = 'yes'")
    stack.send(invoice(new_id, stack.last_time))
    page.locator(f'#rows tr[data-customer="{new_id}"]').wait_for(timeout=60_000)
    assert page.evaluate("window.__sameDocument") == "yes"  # no navigation happened


def test_the_customer_chart_has_one_point_per_score_and_marks_alerts(stack: Stack, page: Any,
                                                                      tmp_path: Path) -> None:
    ranked = stack.web.get("/api/worklist?limit=50")["items"]
    with_alerts = [r["customer_id"] for r in ranked
                   if stack.web.get(f"/api/customers/{quote(r['customer_id'], safe='')}")["alerts"]]
    cid = with_alerts[0] if with_alerts else ranked[0]["customer_id"]
    page.goto(stack.web.url + f"/customers/{quote(cid, safe='')}")
    detail = stack.web.get(f"/api/customers/{quote(cid, safe='')}")
    assert len(detail["history"]) > 1
    assert page.locator("svg.chart circle.score-point").count() == len(detail["history"])
    assert page.locator("svg.chart .alert-mark").count() == len(detail["alerts"])
    assert page.locator("ol.reasons li").count() == max(1, len(detail["latest"]["reasons"]))
    screenshot(page, tmp_path, "customer.png")


def test_event_text_shows_as_text_never_as_html(stack: Stack, page: Any) -> None:
    page.goto(stack.web.url + f"/?q={quote('<img', safe='')}")
    row = page.locator("#rows tr[data-customer]")
    assert row.count() == 1
    assert row.locator("a.cid").inner_text() == XSS_ID
    assert page.locator("#rows img").count() == 0
    row.locator("a.cid").click()
    page.wait_for_url("**/customers/**")
    assert page.locator("h1 .cid").inner_text() == XSS_ID
    assert page.locator("main img").count() == 0
    page.goto(stack.web.url + "/alerts")
    assert page.get_by_text(f"note {XSS_TEXT} end").count() == 1
    assert page.locator("main img").count() == 0
    assert page.dialogs == []


def test_keyboard_moves_through_the_worklist_and_opens_a_customer(stack: Stack, page: Any) -> None:
    page.goto(stack.web.url + "/")
    first = page.locator("#rows tr[data-customer]").first.get_attribute("data-customer")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers/**")
    assert page.locator("h1 .cid").inner_text() == first


def test_with_a_token_an_unauthenticated_request_is_refused(stack: Stack, browser: Any,
                                                            tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    web = Web({**stack.worker.env, "ARSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
               "ARSCORE_WEB_TOKEN": token, "ARSCORE_WEB_GROUP": f"web-token-{token[:6]}"},
              tmp_path / "web-token.log", token=token)
    try:
        web.start()
        assert web.request("/api/worklist", token="")[0] == 401
        assert web.request("/api/worklist", token="wrong")[0] == 401
        assert web.request("/openapi.json", token="")[0] == 401
        assert web.request("/api/worklist")[0] == 200
        context = browser.new_context()
        pg = context.new_page()
        assert context.request.get(web.url + "/api/health").status == 401
        pg.goto(web.url + "/alerts")
        assert "/login" in pg.url and pg.locator("#rows, #alert-rows").count() == 0
        pg.fill("input[name=token]", "wrong")
        pg.click("form.login button")
        assert pg.locator(".error").count() == 1
        pg.fill("input[name=token]", token)
        pg.click("form.login button")
        pg.wait_for_url(web.url + "/alerts")
        assert pg.locator("#alert-rows").count() == 1
        assert context.request.get(web.url + "/api/health").status == 200  # the cookie works
        context.close()
    finally:
        assert web.stop() == 0  # SIGTERM is a clean stop
    assert "Traceback" not in web.log.read_text()
