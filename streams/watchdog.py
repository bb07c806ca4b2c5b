"""The broker check: say loudly when the broker is lost or was reset, and stop rather than hang.

A memory-storage broker (shared/BROKER.md, deviation 6) loses every topic and offset when
it restarts; a worker that carried on would wait for records that never come.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streams.app import stop_worker
from streams.settings import Settings

log = logging.getLogger("arscore.worker")


class BrokerWatchdog:
    """Checks, every ``broker_check_seconds``, that the broker answers and the inputs exist."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ok_at = time.monotonic()

    def problem(self) -> str | None:
        """None when the broker answers and the input topics exist, else what is wrong."""
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        from streams.broker import bootstrap_servers, client_options

        servers = bootstrap_servers(self.settings.broker_url)
        try:
            # a metadata probe, in no group: without enable_auto_commit=False kafka-python
            # warns "group_id is None: disabling auto-commit" on every check
            probe = KafkaConsumer(bootstrap_servers=servers, request_timeout_ms=3000,
                                  api_version_auto_timeout_ms=3000, enable_auto_commit=False,
                                  **client_options(self.settings))
            try:
                topics = probe.topics()
            finally:
                probe.close()
        except (OSError, KafkaError, ValueError) as exc:
            return f"broker at {servers} unreachable ({type(exc).__name__})"
        missing = [t for t in self.settings.input_topics if t not in topics]
        if missing:
            return (f"input topics {', '.join(missing)} are gone from the broker at {servers} "
                    "(was it restarted? a memory-storage broker loses every topic and offset)")
        return None

    async def check(self) -> None:
        """The timer: the check runs in a thread (kafka-python blocks)."""
        problem = await asyncio.get_running_loop().run_in_executor(None, self.problem)
        if problem is None:
            self.ok_at = time.monotonic()
            return
        lost_for = time.monotonic() - self.ok_at
        log.error("%s for %.0fs", problem, lost_for)
        if lost_for >= self.settings.broker_lost_seconds:
            stop_worker(problem)
