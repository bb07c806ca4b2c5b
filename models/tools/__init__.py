"""Offline tools over the online core: replay, backtest and its report, the simulator,
ledger import, batch baselines and alert evaluation against ground truth.

They run the same :mod:`models` core the worker runs (the same engine, model and rules),
but only from the command line, tests and benchmarks: the live worker imports none of
them (``tests/unit/tools/test_worker_imports.py`` checks it).
"""
