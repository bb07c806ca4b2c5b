"""Real parts only: a Tansu broker started once per session, real ``arscore worker`` processes.

Each test gets its own topic names and app id (uuid), so tests never see each other's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@dataclass
class Worker:
    settings: Settings
    env: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--log-level", "warning"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT))
        self.wait_metrics()
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.metrics_port}/metrics"

    def wait_metrics(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.metrics_url, timeout=1).read()
                return
            except OSError:
                if self.procs and self.procs[-1].poll() is not None:
                    raise AssertionError(f"worker exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        raise AssertionError("worker metrics endpoint never came up")

    def scrape(self) -> dict[str, float]:
        """Prometheus text over HTTP -> {series: value} (samples with labels kept as text)."""
        text = urllib.request.urlopen(self.metrics_url, timeout=3).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                out[series] = float(value)
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def worker_settings(broker: EmbeddedBroker, tmp_path: Path, **extra: str) -> tuple[Settings, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    env_values = {
        "ARSCORE_BROKER_URL": broker.url, "ARSCORE_DEV_BROKER": "1",
        "ARSCORE_APP_ID": f"arscore-{tag}", "ARSCORE_DATA_DIR": str(tmp_path / "data"),
        "ARSCORE_INVOICES_TOPIC": f"inv-{tag}", "ARSCORE_PAYMENTS_TOPIC": f"pay-{tag}",
        "ARSCORE_SCORES_TOPIC": f"scores-{tag}", "ARSCORE_ALERTS_TOPIC": f"alerts-{tag}",
        "ARSCORE_DEADLETTER_TOPIC": f"dead-{tag}", "ARSCORE_METRICS_PORT": str(free_port()),
        "ARSCORE_WEB_PORT": str(free_port()), "ARSCORE_PARTITIONS": "1",
        "ARSCORE_IDLE_SECONDS": "3", "ARSCORE_TICK_SECONDS": "0.5",
    }
    env_values.update(extra)
    env = {**os.environ, **env_values}
    return Settings.from_env(env).dev_broker_profile(), env


@pytest.fixture
def make_worker(broker: EmbeddedBroker, tmp_path: Path) -> Iterator:
    workers: list[Worker] = []

    def make(**extra: str) -> Worker:
        settings, env = worker_settings(broker, tmp_path, **extra)
        w = Worker(settings, env, tmp_path / f"worker{len(workers)}.log")
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()
