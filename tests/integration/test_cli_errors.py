"""Broker trouble and security basics, through real ``arscore worker`` processes.

- broker not reachable at start: one ``arscore:`` line on stderr, bounded retries
  (``ARSCORE_CONNECT_TIMEOUT``), non-zero exit, no traceback;
- a SASL password never appears in any output, even in the connection error;
- the web and metrics endpoints listen on 127.0.0.1 by default;
- broker stops mid-run: the worker logs an ERROR naming the broker and exits (code 3)
  within ``ARSCORE_BROKER_LOST_SECONDS`` plus one check, instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Worker, worker_settings

from streams.broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-value"


def run_worker(env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    # the installed console script, as users run it (``python -m streams.cli`` runs cli.py as
    # __main__, so worker.py's CliError is another class and escapes as a traceback)
    proc = subprocess.run([str(Path(sys.executable).parent / "arscore"), "worker"], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def unreachable_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSCORE_")}
    env.update({"ARSCORE_BROKER_URL": f"127.0.0.1:{free_port()}", "ARSCORE_CONNECT_TIMEOUT": "3",
                "ARSCORE_DATA_DIR": str(tmp_path), "ARSCORE_METRICS_PORT": str(free_port()),
                "ARSCORE_WEB_PORT": str(free_port())}, **extra)
    return env


def test_unreachable_broker_is_one_line_bounded_and_nonzero(tmp_path: Path) -> None:
    proc, took = run_worker(unreachable_env(tmp_path))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("arscore: "), proc.stderr
    assert "did not answer within 3s" in lines[0]
    assert took < 20, took  # bounded by ARSCORE_CONNECT_TIMEOUT, not forever


def test_a_bad_setting_is_one_line_and_nonzero(tmp_path: Path) -> None:
    proc, _ = run_worker(unreachable_env(tmp_path, ARSCORE_SWITCH_INTERVAL_SECONDS="0"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["arscore: ARSCORE_SWITCH_INTERVAL_SECONDS='0' is not valid: "
                     "must be more than 0"], proc.stderr


def test_sasl_password_never_printed(tmp_path: Path) -> None:
    env = unreachable_env(tmp_path, ARSCORE_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                          ARSCORE_SASL_MECHANISM="PLAIN", ARSCORE_SASL_USERNAME="svc-arscore",
                          ARSCORE_SASL_PASSWORD=SECRET)
    proc, _ = run_worker(env)
    assert proc.returncode != 0
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert "Traceback" not in proc.stderr


def listening(port: int) -> set[str]:
    """Local addresses (IPv4 dotted) listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, _, hexport = local.partition(":")
            if state != "0A" or int(hexport, 16) != port:
                continue
            if len(addr) == 8:
                found.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add("v6:" + addr)
    return found


def test_endpoints_bind_loopback_by_default(make_worker) -> None:
    worker = make_worker().start()
    assert "ARSCORE_WEB_HOST" not in worker.env
    assert listening(worker.settings.metrics_port) == {"127.0.0.1"}
    deadline = time.monotonic() + 20
    while not listening(worker.settings.web_port) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert listening(worker.settings.web_port) == {"127.0.0.1"}


def test_broker_stopping_mid_run_stops_the_worker_loudly(tmp_path: Path) -> None:
    broker = EmbeddedBroker().start()
    try:
        settings, env = worker_settings(broker, tmp_path, ARSCORE_BROKER_LOST_SECONDS="4",
                                        ARSCORE_BROKER_CHECK_SECONDS="1")
        worker = Worker(settings, env, tmp_path / "worker.log").start()
        time.sleep(2)
        broker.stop()
        stopped = time.monotonic()
        proc = worker.procs[-1]
        try:
            code = proc.wait(timeout=45)
        finally:
            worker.stop()
        took = time.monotonic() - stopped
    finally:
        broker.stop()
    log = worker.log.read_text()
    assert code == 3, log[-2000:]
    assert f"broker at {broker.url}" in log and " ERROR " in log
    print(f"broker stop: worker exited (code 3) {took:.1f}s after the broker stopped")
