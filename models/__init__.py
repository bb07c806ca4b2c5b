"""arscore's pure core: customer state, features, the online model, scores and alerts.

No Kafka, no asyncio, no wall clock: the same events in the same order give the
same state, scores and alerts wherever this runs (worker, replay, tests).
"""

from schemas.pure_source import prefer_source

prefer_source(__path__)  # ARSCORE_PURE_PYTHON=1: the source, not the compiled modules
