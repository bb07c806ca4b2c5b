"""A synthetic accounts-receivable event stream with known ground truth.

The simulator invents a population of customers with hidden payment behaviour
(``stable``, ``slow``, ``erratic``, ``deteriorating``), lets each of them receive
invoices and pay them (late or not, in instalments, naming the invoice or not,
disputing some, receiving credit notes) and yields the resulting events in the
wire form of :func:`schemas.events.event_to_dict`, in *file* order: sorted by
event time, except a share of events that arrive late and a share that are
delivered twice, as a Kafka topic replayed into a file would look.

- :mod:`.config`: what to simulate and what a run counted;
- :mod:`.customer`: one customer's hidden behaviour and invoice plan;
- :mod:`.stream`: the population merged into one stream with delivery noise, and the
  ground truth.
"""

from __future__ import annotations

from models.tools.simulator.config import PROFILES, SimulationConfig, SimulationStats
from models.tools.simulator.stream import ground_truth, simulate

__all__ = ["PROFILES", "SimulationConfig", "SimulationStats", "ground_truth", "simulate"]
