"""The Faust worker writes no terminal escape codes into a log file."""

from __future__ import annotations

import io

import faust
import pytest

from streams.app import quiet_worker


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stdout", "spinner"), [(io.StringIO(), False), (Terminal(), True)])
def test_the_spinner_only_runs_on_a_terminal(monkeypatch: pytest.MonkeyPatch, stdout: io.StringIO,
                                             spinner: bool) -> None:
    monkeypatch.setattr("sys.stdout", stdout)
    app = faust.App("app-test", broker="kafka://127.0.0.1:9", store="memory://")
    worker = quiet_worker(app, "warning")
    assert (worker.spinner is not None) is spinner
    worker._on_startup_end_spinner()  # what the worker does once started
    assert ("\x1b" in stdout.getvalue()) is spinner
