"""The consumer's decode step: every record advances its partition's offset; bad ones are
counted, never applied, and logged without their content."""

from __future__ import annotations

import logging
from collections import namedtuple
from typing import Any

import pytest

from schemas.codec import dumps
from schemas.contracts import load_schema
from streams.settings import Settings
from streams.worklist.config import web_config
from streams.worklist.materialiser import Materialiser

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset value")


def test_decode_counts_bad_records_and_advances_past_them(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings()
    m = Materialiser(settings, web_config(settings, {}), engine=None)  # type: ignore[arg-type]
    good_score = dumps(load_schema("score")["examples"][0])
    good_alert = dumps(load_schema("alert")["examples"][0])
    secret = dumps({**load_schema("score")["examples"][0], "band": "TOP-SECRET-CUSTOMER"})
    polled: dict[Any, list[Any]] = {
        TP(settings.scores_topic, 0): [Rec(7, good_score), Rec(8, b"{oops"), Rec(9, secret),
                                       Rec(10, None)],
        TP(settings.alerts_topic, 1): [Rec(3, good_alert)],
    }
    with caplog.at_level(logging.WARNING):
        batch = m.decode(polled)
    assert len(batch.scores) == 1 and len(batch.alerts) == 1
    assert batch.malformed == {(settings.scores_topic, 0): 3}
    assert batch.next_offsets == {(settings.scores_topic, 0): 11, (settings.alerts_topic, 1): 4}
    assert len(caplog.records) == 3
    assert "TOP-SECRET" not in caplog.text and "CUST-1001" not in caplog.text
