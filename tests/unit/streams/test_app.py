"""The Faust worker writes no terminal escape codes into a log file."""

from __future__ import annotations

import io
import logging

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


def test_a_rebalance_heartbeat_is_info_and_other_heartbeat_failures_stay_warnings(
        caplog: pytest.LogCaptureFixture) -> None:
    from streams.app import calm_rebalance_heartbeats

    calm_rebalance_heartbeats()
    calm_rebalance_heartbeats()  # installed once
    log = logging.getLogger("aiokafka.consumer.group_coordinator")
    assert len(log.filters) == 1
    with caplog.at_level(logging.WARNING, logger=log.name):
        log.warning("Heartbeat failed for group %s because it is rebalancing", "arscore")
        log.warning("Heartbeat failed: local member_id was not recognized")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Heartbeat failed: local member_id was not recognized")]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=log.name):
        log.warning("Heartbeat failed for group %s because it is rebalancing", "arscore")
    assert [r.levelname for r in caplog.records] == ["INFO"]
