"""A compiled module (mypyc, Cython...) next to its source shadows the source on import:
an edit to the .py would then silently not run. Fail if such a binary is older than its source."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_compiled_module_is_older_than_its_source() -> None:
    stale = []
    for package in ("models", "schemas"):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            for binary in (ROOT / package).glob(f"*{suffix}"):
                source = binary.with_name(binary.name[: -len(suffix)] + ".py")
                if source.exists() and binary.stat().st_mtime < source.stat().st_mtime:
                    stale.append(str(binary.relative_to(ROOT)))
    assert not stale, f"compiled modules older than their .py (rebuild or delete them): {stale}"
