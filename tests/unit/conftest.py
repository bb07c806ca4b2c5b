"""Unit tests mirror the packages (``models/``, ``models/tools/``, ``schemas/``, ``streams/``,
``deploy/``). They share the event builders of ``tests/unit/helpers.py``: this folder goes
on the import path, as pytest would put it for test files directly in it.
"""

import sys
from pathlib import Path

UNIT = str(Path(__file__).resolve().parent)
if UNIT not in sys.path:
    sys.path.insert(0, UNIT)
