"""A compiled module next to its source shadows the source on import: an edit to the .py
would then silently not run. ``pip install -e .`` (``make install``) and ``make native``
build the Cython core in place, beside the ``.py`` files of ``models/`` and ``schemas/``
(``setup.py``, ``models/build.py``). Fail if such a binary is older than its source, or if
one is there that the build does not make (a module taken off ``COMPILED``, a mypyc
experiment): nothing would ever rebuild it."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

from models.build import COMPILED

ROOT = Path(__file__).resolve().parents[2]


def _binaries() -> list[tuple[Path, Path, str]]:
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    found = []
    for package in ("models", "schemas"):
        for binary in sorted((ROOT / package).rglob("*")):
            suffix = next((s for s in suffixes if binary.name.endswith(s)), None)
            if suffix is None:
                continue
            source = binary.with_name(binary.name[: -len(suffix)] + ".py")
            module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
            found.append((binary, source, module))
    return found


def test_no_compiled_module_is_older_than_its_source() -> None:
    stale = [str(binary.relative_to(ROOT)) for binary, source, _ in _binaries()
             if source.exists() and binary.stat().st_mtime < source.stat().st_mtime]
    assert not stale, f"compiled modules older than their .py (`make native`, or delete them): {stale}"


def test_every_compiled_module_is_one_the_build_makes() -> None:
    strays = [str(binary.relative_to(ROOT)) for binary, _, module in _binaries()
              if module not in COMPILED]
    assert not strays, f"compiled modules setup.py does not build (delete them): {strays}"
