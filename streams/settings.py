"""One frozen settings object, read once from ``ARSCORE_*`` environment variables.

Defaults work on one laptop: no broker URL means "start the embedded dev broker".
Secrets are :class:`Secret` values whose repr never shows them, so they cannot leak
into logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from models.config import ScoringConfig

PREFIX = "ARSCORE_"
_CORE = ScoringConfig()


class Secret(str):
    """A string that prints as ``'***'``; use ``.reveal()`` where the value is really needed."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def __str__(self) -> str:
        return "***" if self else ""

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    # broker
    broker_url: str = ""
    """Kafka bootstrap servers (``kafka://host:9092``); empty = start the embedded dev broker."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    connect_timeout: float = 20.0
    """Seconds to keep retrying an unreachable broker at start before giving up."""
    broker_lost_seconds: float = 30.0
    """A running worker that cannot reach the broker, or finds its input topics gone (a
    memory-storage dev broker was restarted), for this long logs an ERROR naming the broker
    and exits with code 3 instead of hanging. Its state stays consistent: the changelog
    holds only committed batches. 0 turns the watchdog off."""
    broker_check_seconds: float = 5.0
    # topics
    invoices_topic: str = "ar.invoices"
    payments_topic: str = "ar.payments"
    scores_topic: str = "ar.scores"
    alerts_topic: str = "ar.alerts"
    deadletter_topic: str = "ar.deadletter"
    partitions: int = 4
    replication_factor: int = 1
    # worker
    app_id: str = "arscore"
    data_dir: str = ".arscore"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    metrics_port: int = 9108
    tick_seconds: float = 1.0
    reorder_seconds: float = 0.0
    idle_seconds: float = 5.0
    checkpoint_seconds: float = 60.0
    portfolio_seconds: float = 10.0
    """How often the gauges that walk every customer (bands, money at risk) are refreshed:
    that walk costs O(customers), too much for every tick on a large book."""
    batch_max: int = 2000
    """Most events handled in one batch (decode, score, send the outputs); state commits
    come at most every ``state_commit_seconds``. A batch is what the agent's channel holds
    when the previous one is done (:mod:`streams.batches`): there is no fill wait."""
    state_commit_seconds: float = 0.5
    """Longest time between two state commits of a partition (its changed customer states,
    then a commit record with the model and resume offsets, after every output sent so far
    is acknowledged). Outputs go out with every batch; states are committed at most this
    often, also on every tick, revocation and shutdown. A crash redoes what followed the
    last commit and sends the same scores and alerts again (alert ids are deterministic:
    consumers de-duplicate). 0 commits after every batch. Fewer commits mean fewer
    round trips in the batch loop and a smaller changelog: a customer changed by several
    batches is written once, the ~6 KB model once per partition per commit."""
    fetch_wait_seconds: float = 0.05
    """Longest time the broker may hold the worker's fetch when it has no new records.
    Faust's fixed 1.5 s costs up to 1.5 s of latency per hop on brokers that do not answer
    a waiting fetch when records arrive (Tansu); an idle worker pays one small request per
    partition leader per wait instead."""
    switch_interval_seconds: float = 0.05
    """How long the worker's main thread may hold Python's GIL before a waiting thread
    gets it (``sys.setswitchinterval``; CPython's default is 0.005). The scoring runs on
    the main thread and Faust fetches on a second one; at 5 ms the fetch thread forces a
    hand-over every few milliseconds under load. Sustained events/s through the broker in
    steady state (bench/broker_throughput.py --skip-latency, one worker, alternating runs):
    2,552 and 2,884 at 0.005; 3,168 at 0.02; 3,184 and 3,525 at 0.05; 3,104 at 0.1. A fetch
    waits at most this long for the lock, so it also bounds the delay it adds per batch."""
    psi_reference_size: int = 1000
    """Scores in the drift reference window (PSI is measured against the first N scores)."""
    health_window: int = 1000
    """Labels in the sliding window for AUC, log loss and calibration gap."""
    model_kind: str = "logreg"
    warm_start: str = ""
    """Path of a model checkpoint (from ``arscore bootstrap``) every partition starts from."""
    commit_interval: float = 2.8
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    rebalance_timeout: float = 20.0
    producer_max_batch_size: int = 262_144
    """Bytes per producer batch. A batch of scores + states is ~1 MB, so the client's 16 KiB
    default means dozens of produce requests per batch; 256 KiB (with ``producer_linger``)
    is the usual throughput setting. The dev broker needs 1 (see ``dev_broker_profile``)."""
    producer_linger: float = 0.005
    """Seconds the producer waits to fill a batch (Kafka's ``linger.ms``)."""
    dev_broker: bool = False
    """Set for a Tansu dev broker started elsewhere (tests, demo): applies ``dev_broker_profile``."""
    # scoring: defaults come from models.config.ScoringConfig (one source of truth)
    grace_days: float = _CORE.grace_days
    band_cutoffs: tuple[float, float, float] = _CORE.band_cutoffs
    band_hysteresis: float = _CORE.band_hysteresis
    spike_delta: float = _CORE.spike_delta
    spike_window_days: float = _CORE.spike_window_days
    alert_cooldown_days: float = _CORE.alert_cooldown_days
    label_lateness_days: float = _CORE.label_lateness_days
    max_future_days: float = _CORE.max_future_days
    dedupe_ids: int = _CORE.dedupe_ids
    """Event ids remembered per customer: a re-sent event is recognised (and changes
    nothing) while it is among that customer's last ``dedupe_ids`` events. Redelivery after
    a crash or rebalance needs few; a producer that may re-send a long history needs more
    (each id costs 8 bytes of state, changelogged with every update)."""

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def fetch_wait_ms(self) -> int:
        """``fetch_wait_seconds`` as Kafka clients take it (at least 1 ms)."""
        return max(1, round(self.fetch_wait_seconds * 1000))

    @property
    def input_topics(self) -> tuple[str, str]:
        return self.invoices_topic, self.payments_topic

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.data_dir) / "checkpoints"

    def scoring(self) -> ScoringConfig:
        names = {f.name for f in fields(ScoringConfig)}
        return ScoringConfig(**{k: getattr(self, k) for k in names if hasattr(self, k)})

    def with_changes(self, **changes: Any) -> Settings:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return Settings(**data)

    def dev_broker_profile(self) -> Settings:
        """Workarounds for the embedded Tansu broker only (shared/BROKER.md deviation 1).

        Tansu's ListOffsets(LATEST) ignores the record count of multi-record batches, so
        Faust's table recovery stops short of the changelog's end. One-record producer
        batches make the end offsets right, at about a tenth of the produce throughput.
        Apache Kafka needs none of this; production defaults stay untouched.
        """
        return self.with_changes(producer_max_batch_size=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``ARSCORE_<FIELD>`` variables; a bad value raises ValueError naming it."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name.upper()
            if key not in env:
                continue
            values[f.name] = _parse(key, env[key], cls.__dataclass_fields__[f.name].default)
        if values.get("switch_interval_seconds", 1.0) <= 0:  # sys.setswitchinterval's rule
            raise ValueError(f"{PREFIX}SWITCH_INTERVAL_SECONDS="
                             f"{env[PREFIX + 'SWITCH_INTERVAL_SECONDS']!r} is not valid: "
                             "must be more than 0")
        return cls(**values)


def _parse(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            parts = tuple(float(p) for p in raw.split(","))
            if len(parts) != len(default) or list(parts) != sorted(parts):
                raise ValueError(f"expected {len(default)} increasing numbers")
            return parts
    except ValueError as exc:
        raise ValueError(f"{key}={raw!r} is not valid: {exc}") from None
    if key.endswith("PASSWORD"):
        return Secret(raw)
    return raw
