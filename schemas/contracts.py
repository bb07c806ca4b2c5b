"""Where the published JSON Schema files live, and which one describes which record.

The files in ``schemas/json/`` are the contract downstream teams read; this module only
finds and loads them (no jsonschema dependency at run time).

>>> load_schema(SCHEMA_FOR_EVENT_TYPE["invoice.issued"])["title"]
'invoice.issued'
>>> load_schema("score")["title"]
'ScoreRecord'
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_FOR_EVENT_TYPE: dict[str, str] = {
    "invoice.issued": "invoice.issued.schema.json",
    "payment.received": "payment.received.schema.json",
    "invoice.adjusted": "invoice.adjusted.schema.json",
    "invoice.disputed": "invoice.disputed.schema.json",
    "invoice.dispute_resolved": "invoice.dispute_resolved.schema.json",
}
"""Input event ``type`` -> the schema file describing it."""

SCHEMA_FOR_RECORD: dict[str, str] = {
    "ScoreRecord": "score.schema.json",
    "AlertRecord": "alert.schema.json",
    "DeadLetter": "deadletter.schema.json",
}
"""Output record class name (``schemas.records``) -> the schema file describing it."""

SCHEMA_FILES: tuple[str, ...] = (*SCHEMA_FOR_EVENT_TYPE.values(), *SCHEMA_FOR_RECORD.values())
_SUFFIX = ".schema.json"


def schema_dir() -> Path:
    """The directory holding the ``*.schema.json`` files."""
    return Path(__file__).resolve().parent / "json"


def load_schema(name: str) -> dict[str, Any]:
    """Parse one schema file, named in full (``"score.schema.json"``) or by stem (``"score"``).

    Returns a fresh dict on every call, so callers may change it.
    """
    file_name = name if name.endswith(_SUFFIX) else name + _SUFFIX
    if file_name not in SCHEMA_FILES:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(SCHEMA_FILES)}")
    text = (resources.files("schemas") / "json" / file_name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


__all__ = ["SCHEMA_FILES", "SCHEMA_FOR_EVENT_TYPE", "SCHEMA_FOR_RECORD", "load_schema",
           "schema_dir"]
