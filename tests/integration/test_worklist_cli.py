"""``arscore web`` start-up failures: one line, non-zero, no traceback, no secret; and a
clean stop is a normal exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.broker import EmbeddedBroker, free_port
from tests.integration.worklist_fixtures import wait_for

pytestmark = pytest.mark.integration


def web(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "web", *args],
                          env={**os.environ, "ARSCORE_CONNECT_TIMEOUT": "2", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "args", "expected"), [
    ({"ARSCORE_BROKER_URL": ""}, (), "no broker given"),
    ({"ARSCORE_BROKER_URL": "127.0.0.1:1"}, (), "did not answer"),
    ({"ARSCORE_BROKER_URL": "127.0.0.1:1", "ARSCORE_DATABASE_URL": "mysql://x/y"}, (),
     "unsupported scheme"),
    ({"ARSCORE_BROKER_URL": "127.0.0.1:1", "ARSCORE_WORKLIST_PORT": "http"}, (),
     "ARSCORE_WORKLIST_PORT"),
    ({"ARSCORE_BROKER_URL": "127.0.0.1:1"}, ("--port", "nope"), "invalid int value"),
    ({"ARSCORE_BROKER_URL": "127.0.0.1:1",
      "ARSCORE_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x"}, (),
     "cannot open the database postgresql://127.0.0.1:1/x"),
])
def test_start_up_errors_are_one_line(tmp_path: Path, env: dict[str, str], args: Any,
                                      expected: str) -> None:
    done = web({"ARSCORE_DATA_DIR": str(tmp_path), **env}, *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arscore: ") and expected in lines[0], done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).read()
        return True
    except OSError:
        return False


def test_port_in_use_is_one_line_and_ctrl_c_is_a_clean_stop(broker: EmbeddedBroker,
                                                            tmp_path: Path) -> None:
    import socket

    port = free_port()
    env = {**os.environ, "ARSCORE_BROKER_URL": broker.url, "ARSCORE_DATA_DIR": str(tmp_path),
           "ARSCORE_APP_ID": f"cli-{port}", "ARSCORE_SCORES_TOPIC": f"s-{port}",
           "ARSCORE_ALERTS_TOPIC": f"a-{port}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        done = web(env, "--port", str(port))
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "web", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline() if proc.stdout else ""
    assert first.startswith(f"arscore web: http://127.0.0.1:{port}/")  # loopback by default
    proc.send_signal(signal.SIGINT)  # at once: before or while uvicorn starts
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "", err
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "web", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _answers(port), "arscore web answering")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == ""  # a clean stop logs nothing
