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
                [sys.executable, "-m", "streams.cli", "worker", "--log-level",
                 os.environ.get("ARSCORE_TEST_LOG_LEVEL", "warning")],
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
        "ARSCORE_PORTFOLIO_SECONDS": "0.5",
    }
    env_values.update(extra)
    env = {**os.environ, **env_values}
    return Settings.from_env(env).dev_broker_profile(), env


@pytest.fixture
def make_worker(broker: EmbeddedBroker, tmp_path: Path) -> Iterator:
    workers: list[Worker] = []

    def make(like: Worker | None = None, **extra: str) -> Worker:
        """A worker with its own topics; ``like=w``: another member of ``w``'s app and group."""
        if like is None:
            settings, env = worker_settings(broker, tmp_path, **extra)
        else:
            env = {**like.env, "ARSCORE_METRICS_PORT": str(free_port()),
                   "ARSCORE_WEB_PORT": str(free_port()),
                   "ARSCORE_DATA_DIR": str(tmp_path / f"data{len(workers)}"), **extra}
            settings = Settings.from_env(env).dev_broker_profile()
        w = Worker(settings, env, tmp_path / f"worker{len(workers)}.log")
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()


# --- reliability helpers (additive) --------------------------------------------------


def kill_worker(worker: Worker) -> None:
    """kill -9 the worker's newest process (no shutdown hook, no group leave)."""
    import signal

    proc = worker.procs[-1]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-customer_to_state-changelog"


def placements(settings: Settings, topic: str) -> list[tuple[str, int]]:
    """(key, partition) of every record of ``topic``, read from the start."""
    from streams.kafkaio import read_records

    return [(r.key.decode(), r.partition) for r in read_records(settings, topic)]


def committed_view(settings: Settings) -> tuple[dict[str, dict], dict[int, dict]]:
    """Read the state changelog as recovery does: only batches closed by a commit record.

    Returns (customer_id -> state dict, partition -> latest commit record dict).
    """
    from kafka import KafkaConsumer, TopicPartition

    from models.serialize import state_to_dict
    from schemas.codec import loads
    from streams.broker import bootstrap_servers
    from streams.changelog import StateCodec

    reader = StateCodec()
    topic = changelog_topic(settings)
    c = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker_url),
                      enable_auto_commit=False, group_id=None,
                      receive_message_max_bytes=64 << 20)
    states: dict[str, dict] = {}
    commits: dict[int, dict] = {}
    try:
        parts = sorted(c.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return states, commits
        c.assign(tps)
        c.seek_to_beginning(*tps)
        pending: dict[int, tuple[str, dict[str, dict]]] = {}
        quiet = time.monotonic()
        while time.monotonic() - quiet < 1.0:
            for tp, records in c.poll(timeout_ms=200).items():
                quiet = time.monotonic()
                for r in records:
                    doc = loads(r.value, max_bytes=None)
                    if "commit" in doc:
                        batch, docs = pending.pop(tp.partition, ("", {}))
                        if batch == doc["commit"]:
                            states.update(docs)
                        commits[tp.partition] = doc
                    elif "batch" in doc:
                        batch, docs = pending.get(tp.partition, ("", {}))
                        if batch != doc["batch"]:
                            batch, docs = doc["batch"], {}
                            pending[tp.partition] = (batch, docs)
                        # decoded as recovery decodes it, compared in the readable shape
                        state = reader._loads(r.value).state
                        docs[state.customer_id] = state_to_dict(state)
    finally:
        c.close()
    return states, commits


def wait_committed(settings: Settings, expected: dict[str, int], timeout: float = 60.0
                   ) -> tuple[dict[str, dict], dict[int, dict]]:
    """Until every input source's committed resume offset reaches ``expected`` (its end)."""
    deadline = time.monotonic() + timeout
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        states, commits = committed_view(settings)
        got = {src: off for c in commits.values() for src, off in c["resume"].items()}
        if all(got.get(src, 0) >= off for src, off in expected.items() if off > 0):
            return states, commits
        time.sleep(1.0)
    raise AssertionError(f"not drained: committed resume offsets {got}, expected {expected}")


def end_offsets(settings: Settings, lines: list[bytes], partitions: int = 1) -> dict[str, int]:
    """Per input source ``topic:partition``, how many records ``lines`` put there."""
    from streams.kafkaio import route
    from streams.partitioning import partition_for

    counts: dict[str, int] = {}
    for raw in lines:
        topic, key = route(raw, settings)
        p = partition_for(key.decode(), partitions) if key is not None else None
        if p is None:
            continue  # unkeyed: the producer picks; callers keep these out of exact counts
        src = f"{topic}:{p}"
        counts[src] = counts.get(src, 0) + 1
    return counts


def replay_with_state(path: Path, out: Path, env: dict[str, str],
                      partitions: int = 1) -> dict[str, dict]:
    """``arscore replay`` with ``--state-out``: customer_id -> final state dict."""
    from schemas.codec import loads

    state = Path(str(out) + ".state")
    subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path), "-o", str(out),
                    "--dead-letter", str(out) + ".dl", "--partitions", str(partitions),
                    "--state-out", str(state)], check=True, capture_output=True, env=env)
    docs = [loads(line, max_bytes=None) for line in state.read_bytes().splitlines() if line.strip()]
    return {d["customer_id"]: d for d in docs}


# --- worklist (`arscore web`) fixtures: real web processes, a real PostgreSQL (additive) ---

from tests.integration.worklist_fixtures import (  # noqa: E402, F401
    database_url,
    make_web,
    postgres_server,
)
