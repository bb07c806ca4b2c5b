"""The Faust app and its options: broker options and credentials, the app with the tuned
consumer transport, the topics, the Faust worker that runs it, and the worker's way out."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import faust

from streams.broker import faust_url
from streams.faust_internals import consumer_transport
from streams.settings import Settings

log = logging.getLogger("arscore.worker")


def faust_settings(s: Settings) -> dict[str, Any]:
    """Faust/aiokafka options; the dev-broker workaround is visible as one named setting."""
    opts: dict[str, Any] = dict(
        broker=faust_url(s.broker_url), store="memory://", topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor, web_enabled=True, web_port=s.web_port,
        web_bind=s.web_host, web_host=s.web_host, datadir=s.data_dir,
        consumer_auto_offset_reset="earliest", broker_commit_interval=s.commit_interval,
        broker_session_timeout=s.session_timeout, broker_heartbeat_interval=s.heartbeat_interval,
        broker_rebalance_timeout=s.rebalance_timeout, topic_allow_declare=True,
        table_cleanup_interval=3600.0,
    )
    if s.producer_max_batch_size:
        opts["producer_max_batch_size"] = s.producer_max_batch_size
    opts["producer_linger"] = s.producer_linger
    if s.security_protocol != "PLAINTEXT":
        opts["broker_credentials"] = _credentials(s)
    return opts


def _credentials(s: Settings) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=s.ssl_cafile or None)
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=s.sasl_username,
                                     password=s.sasl_password.reveal(),
                                     ssl_context=context if "SSL" in s.security_protocol else None,
                                     mechanism=s.sasl_mechanism)
    return faust.SSLCredentials(context)


def build_app(s: Settings) -> faust.App:
    """The Faust app for these settings, its consumer's fetch wait tuned (``fetch_wait_ms``)."""
    app = faust.App(s.app_id, **faust_settings(s))
    app.transport = consumer_transport(app, s.fetch_wait_ms)
    return app


@dataclass(frozen=True, slots=True)
class Topics:
    """The worker's topics; records travel as raw bytes (the project's codec encodes them)."""

    inputs: Any
    scores: Any
    alerts: Any
    deadletter: Any

    @classmethod
    def declare(cls, app: faust.App, s: Settings) -> Topics:
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        return cls(inputs=app.topic(s.invoices_topic, s.payments_topic, **raw),
                   scores=app.topic(s.scores_topic, partitions=s.partitions,
                                    config={"cleanup.policy": "compact"}, **raw),
                   alerts=app.topic(s.alerts_topic, partitions=s.partitions, **raw),
                   deadletter=app.topic(s.deadletter_topic, partitions=1, **raw))


def quiet_worker(app: faust.App, log_level: str) -> faust.Worker:
    """The Faust worker that runs ``app``, with no terminal spinner unless stdout is a tty.

    Faust's worker draws a progress spinner and ends it with cursor escape codes
    (``ESC[?25l`` / ``ESC[?25h``) whether or not stdout is a terminal, so they landed in
    log files; without the spinner it logs "Ready" instead.
    """
    worker = faust.Worker(app, loglevel=log_level.upper(), quiet=True, stdout=sys.stdout,
                          redirect_stdouts=False, override_logging=False)
    if not _isatty(worker.stdout):
        worker.spinner = None
    calm_rebalance_heartbeats()
    return worker


class _RebalanceHeartbeat(logging.Filter):
    """aiokafka's "Heartbeat failed for group ... because it is rebalancing", as INFO.

    Every member logs it at WARNING on every rebalance, a member joining or leaving
    cleanly included: the expected sign of a rebalance, which the worker already counts
    (``arscore_rebalances_total``) and logs per partition. Other heartbeat failures stay
    warnings.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "because it is rebalancing" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def calm_rebalance_heartbeats() -> None:
    """Install :class:`_RebalanceHeartbeat` on aiokafka's group coordinator logger (once)."""
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _RebalanceHeartbeat) for f in logger.filters):
        logger.addFilter(_RebalanceHeartbeat())


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed file
        return False


def stop_worker(problem: str) -> NoReturn:
    """Exit with code 3 now, from any task: the changelog holds only committed batches, so
    a restart resumes consistently (an exception here would only end the task)."""
    log.error("stopping the worker (exit code 3): %s; the changelog holds only committed "
              "batches, so a restart resumes consistently", problem)
    logging.shutdown()
    os._exit(3)

