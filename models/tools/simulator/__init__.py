"""The synthetic AR event stream with known ground truth (see :mod:`.stream`)."""

from __future__ import annotations

from models.tools.simulator.stream import (
    PROFILES,
    SimulationConfig,
    SimulationStats,
    ground_truth,
    simulate,
)

__all__ = ["PROFILES", "SimulationConfig", "SimulationStats", "ground_truth", "simulate"]
