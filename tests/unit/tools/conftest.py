"""Tests of the offline tools (:mod:`models.tools` and the commands that run them).

They share the event builders of the core's tests (``tests/unit/helpers.py``): put that
folder on the import path, as pytest does for the test files directly in it.
"""

import sys
from pathlib import Path

UNIT = str(Path(__file__).resolve().parents[1])
if UNIT not in sys.path:
    sys.path.insert(0, UNIT)
