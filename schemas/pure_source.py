"""The switch to the interpreted source: ``ARSCORE_PURE_PYTHON=1``.

Where a C compiler was present at install, the per-event modules of ``models`` and
``schemas`` sit beside their ``.py`` files as compiled extension modules
(:mod:`models.build` lists them and says which run). With ``ARSCORE_PURE_PYTHON=1`` both
packages import their ``.py`` files instead: each package's ``__init__`` calls
:func:`prefer_source` before any submodule loads. It lives here, in the lowest layer, so
that ``schemas`` needs nothing from ``models``. Never compiled itself.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Iterable

#: The run-time and install-time switch to the interpreted source.
PURE_ENV = "ARSCORE_PURE_PYTHON"


def pure_forced() -> bool:
    """True when ``ARSCORE_PURE_PYTHON`` is set to anything but empty or ``0``."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def prefer_source(package_path: Iterable[str]) -> None:
    """When the pure source is forced, make a package's submodules load from ``.py`` files.

    Called by ``models/__init__.py`` and ``schemas/__init__.py`` with their ``__path__``,
    before any submodule is imported: each directory gets a path-entry finder that knows
    source and bytecode but not extension modules. Does nothing unless forced.
    """
    if not pure_forced():
        return
    loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
               (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES)]
    for entry in package_path:
        sys.path_importer_cache[entry] = importlib.machinery.FileFinder(entry, *loaders)
