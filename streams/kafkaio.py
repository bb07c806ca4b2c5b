"""Small kafka-python helpers shared by ``produce``, ``tail``, ``demo`` and the tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from schemas.codec import DecodeError, loads
from streams.broker import bootstrap_servers, client_options
from streams.settings import Settings


def route(raw: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """Topic and key for a raw event line: payments to the payments topic, the rest to invoices.

    Lines that cannot be parsed still go out (to the invoices topic, unkeyed): the worker
    is the one that dead-letters them, with the reason, so nothing is lost on the way.
    """
    try:
        doc = loads(raw)
    except DecodeError:
        return settings.invoices_topic, None
    if not isinstance(doc, dict):
        return settings.invoices_topic, None
    topic = settings.payments_topic if doc.get("type") == "payment.received" else (
        settings.invoices_topic)
    cid = doc.get("customer_id")
    return topic, cid.encode() if isinstance(cid, str) else None


def producer(settings: Settings, **overrides: Any) -> Any:
    from kafka import KafkaProducer

    opts: dict[str, Any] = dict(bootstrap_servers=bootstrap_servers(settings.broker_url),
                                linger_ms=5, acks=1, **client_options(settings))
    if settings.producer_max_batch_size:
        opts["batch_size"] = settings.producer_max_batch_size
    opts.update(overrides)
    return KafkaProducer(**opts)


def produce_lines(settings: Settings, lines: Iterable[bytes], rate: float = 0.0,
                  prod: Any = None) -> Iterator[int]:
    """Send each non-empty line; yields the running count. ``rate`` > 0 paces events/s."""
    own = prod is None
    prod = prod or producer(settings)
    started = time.monotonic()
    sent = 0
    try:
        for line in lines:
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            topic, key = route(raw, settings)
            prod.send(topic, key=key, value=raw)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            yield sent
        prod.flush()
    finally:
        if own:
            prod.close()


def consumer(settings: Settings, topics: Iterable[str], from_beginning: bool = True) -> Any:
    """A group-less consumer assigned to every partition of ``topics``."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker_url),
                      enable_auto_commit=False, group_id=None,
                      # Tansu answers fetches with more than fetch_max_bytes; a frame over
                      # kafka-python's 1 MB default drops the connection and re-reads
                      receive_message_max_bytes=64 << 20,
                      # see streams/faust_internals.py: Tansu holds a fetch for the full wait
                      fetch_max_wait_ms=settings.fetch_wait_ms,
                      **client_options(settings))
    tps = []
    for topic in topics:
        for p in sorted(c.partitions_for_topic(topic) or ()):
            tps.append(TopicPartition(topic, p))
    c.assign(tps)
    if from_beginning:
        c.seek_to_beginning(*tps)
    else:
        c.seek_to_end(*tps)
    return c


def read_records(settings: Settings, topic: str, idle: float = 1.0) -> list[Any]:
    """Every record of ``topic`` from the start (kafka-python ``ConsumerRecord``s, with
    their partition), stopping after ``idle`` seconds without new ones."""
    c = consumer(settings, [topic])
    out: list[Any] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle:
            batch = c.poll(timeout_ms=200)
            for records in batch.values():
                out.extend(records)
                quiet_since = time.monotonic()
    finally:
        c.close()
    return out


def read_all(settings: Settings, topic: str, idle: float = 1.0) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of ``topic`` from the start (see :func:`read_records`)."""
    return [(r.key, r.value) for r in read_records(settings, topic, idle)]
