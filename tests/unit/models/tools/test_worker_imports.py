"""The live worker imports no offline tool (issue 16: the core apart from the tools).

Run in a fresh interpreter so that what other tests imported does not count. Besides the
worker command itself, every module of :mod:`streams` that is not a command is imported:
that is everything the worker can load once it runs (the service and its parts), however
the service is split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
TOOL_WORDS = ("tools", "simulator", "simulate", "backtest", "ledger", "baseline", "report",
              "replay", "evaluation", "leakage", "bootstrap")

PROBE = """
import importlib, json, pkgutil, sys
import streams.commands.worker
import streams
for info in pkgutil.walk_packages(streams.__path__, "streams."):
    if not info.name.startswith("streams.commands"):
        importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("models", "streams", "schemas")))))
"""


def worker_closure() -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_worker_imports_no_tool() -> None:
    modules = worker_closure()
    assert "streams.commands.worker" in modules and "models.engine" in modules
    tools = [m for m in modules
             if any(word in part for part in m.split(".")[1:] for word in TOOL_WORDS)]
    assert tools == [], f"the worker imports offline tools: {tools}"
