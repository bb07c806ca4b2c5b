"""arscore's pure core: customer state, features, the online model, scores and alerts.

No Kafka, no asyncio, no wall clock: the same events in the same order give the
same state, scores and alerts wherever this runs (worker, replay, tests).
"""
