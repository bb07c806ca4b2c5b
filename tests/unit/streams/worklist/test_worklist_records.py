"""The worklist reads the oldest invoice's days past due from the core's overdue reason: the
core's wording and the worklist's reading are tied here, so changing one fails a test."""

from __future__ import annotations

from helpers import invoice, run, ts

from models.config import ScoringConfig
from models.features import features
from models.scoring import reasons
from schemas.records import to_dict
from streams.worklist.records import oldest_days_past_due


def test_the_core_overdue_reason_reads_back_as_days_past_due() -> None:
    cfg = ScoringConfig()
    state, _ = run([invoice("c1", "i1", 100, 0, 30)])
    now = ts(67.2)  # 37.2 days past due
    why = reasons(state, features(state, now, cfg), now, {"max_days_past_due": 1.0}, cfg)
    assert [r.code for r in why] == ["max_days_past_due"]
    assert oldest_days_past_due([to_dict(r) for r in why]) == 37
