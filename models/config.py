"""The scoring knobs, in one frozen object that every core function receives."""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Business settings of the core; the streaming settings object builds one of these.

    Times are event-time seconds or days, never wall-clock.
    """

    grace_days: float = 5.0
    """An invoice is *late* when fully paid more than this many days after its due date."""
    band_cutoffs: tuple[float, float, float] = (0.25, 0.5, 0.75)
    """p_late lower bounds of the medium, high and critical bands."""
    band_hysteresis: float = 0.1
    """A customer leaves a band downwards only once p_late is this far below its cut-off."""
    spike_delta: float = 0.25
    """A risk spike is a rise of at least this much in p_late ..."""
    spike_window_days: float = 30.0
    """... against the lowest p_late within this many days."""
    alert_cooldown_days: float = 30.0
    """The same alert kind is not raised again for a customer within this many days."""
    min_labels_confident: int = 3
    """Fewer resolved invoices than this and the score is marked low_confidence."""
    prior_late_rate: float = 0.3
    """Cold-start prior of late payment, used to smooth small-sample ratios."""
    history: int = 12
    """How many recent invoice outcomes a customer keeps (older ones live on as aggregates)."""
    dedupe_ids: int = 32
    """How many recent event ids a customer remembers to recognise duplicates."""
    max_unapplied: int = 16
    """Payments held for invoices not yet seen; beyond this the oldest becomes credit."""
    label_lateness_days: float = 1.0
    """Wait this long past due + grace before resolving an open invoice as late,
    so that back-dated payments (bank value dates) still count."""
    max_future_days: float = 60.0
    """Events this far ahead of the stream's event time are refused (a typo'd year
    would otherwise drag the clock forward and resolve every open invoice late)."""
