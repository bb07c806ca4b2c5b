"""The two latency histograms, scraped over HTTP from a real worker on the embedded broker.

``arscore_processing_latency_seconds`` starts when the worker takes an event;
``arscore_ingest_to_score_seconds`` starts at the input record's broker timestamp, so it
also counts the time the record waited in the topic (and, here, in the reorder buffer
until its sources went idle, which both count). Records produced while no worker runs make
the difference plain.
"""

from __future__ import annotations

import time

import pytest

from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from streams.broker import ensure_topics
from streams.kafkaio import produce_lines

pytestmark = pytest.mark.integration

WAITED = 2.0
"""Seconds every record sits in its topic before the worker starts."""


def test_ingest_latency_counts_the_wait_in_the_topic(make_worker) -> None:
    worker = make_worker()
    ensure_topics(worker.settings)
    events = [dumps(e) for e in simulate(SimulationConfig(customers=10, days=40))]
    for _ in produce_lines(worker.settings, events):
        pass
    time.sleep(WAITED)  # the worker starts only now: no record can be scored sooner
    worker.start()

    deadline = time.monotonic() + 60
    while True:
        scraped = worker.scrape()
        consumed = sum(v for k, v in scraped.items() if k.startswith("arscore_events_total{"))
        if consumed >= len(events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert consumed == len(events)
    time.sleep(1.0)  # the last batch's scores are observed after their send

    scraped = worker.scrape()
    ingest = scraped["arscore_ingest_to_score_seconds_count"]
    processing = scraped["arscore_processing_latency_seconds_count"]
    # one observation per score sent for an event, in both histograms
    assert ingest == processing > 0
    # for each score, ingest latency = processing latency + the time between the record's
    # timestamp and the worker taking it, which is at least WAITED here
    waited = (scraped["arscore_ingest_to_score_seconds_sum"]
              - scraped["arscore_processing_latency_seconds_sum"])
    assert waited >= WAITED * ingest
    assert scraped['arscore_ingest_to_score_seconds_bucket{le="1.0"}'] == 0
