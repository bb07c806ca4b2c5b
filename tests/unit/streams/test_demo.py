"""The demo's status line reads the worker's metrics over HTTP and says '-' for what is not there yet."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from streams.commands.demo import _status

METRICS = b"""# HELP arscore_events_total events
arscore_events_total{outcome="ok",type="invoice.issued"} 1200.0
arscore_events_total{outcome="duplicate",type="invoice.issued"} 34.0
arscore_customers_tracked 300.0
"""


@pytest.fixture
def metrics_url() -> Iterator[str]:
    body = [METRICS]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body[0])

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()


def test_status_sums_the_samples_and_has_no_auc_before_the_first_labels(metrics_url: str) -> None:
    assert _status(metrics_url) == "--- 1,234 events scored, 300 customers, AUC -"


def test_status_before_the_worker_is_up() -> None:
    assert _status("http://127.0.0.1:9/metrics") == "--- 0 events scored, 0 customers, AUC -"
