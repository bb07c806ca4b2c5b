"""Which core runs: the modules compiled from this same source by Cython, or the source.

``setup.py`` compiles the modules named in :data:`COMPILED` (Cython 3, pure-Python mode:
the ``.py`` files are the only source) when a C compiler is there, and installs without
them when it is not. :func:`core_build` says which ones this process imported.

``ARSCORE_PURE_PYTHON=1`` forces the source: at install nothing is compiled, and at run
time the ``models`` and ``schemas`` packages import their ``.py`` files even where
compiled modules sit beside them (:func:`prefer_source`, called by both packages'
``__init__``; the switch lives in :mod:`schemas.pure_source`, the lowest layer). The
interpreted modules are the reference; the compiled ones must give
byte-identical results (``tests/golden/test_compiled_equals_pure.py``).

This module is never compiled itself: it must run before any compiled module is loaded.

    >>> core_build() in ("compiled", "pure", "partial")
    True
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path
from typing import Literal

from schemas.pure_source import PURE_ENV, pure_forced

#: The per-event core, compiled when a C compiler is present (``setup.py`` reads this).
#: Left out: ``models.model`` (River pipelines, pickled in checkpoints), ``config``,
#: ``serialize``, ``metrics``, ``drift``, ``deadletters`` and the tools (not per event).
COMPILED: tuple[str, ...] = (
    "models.money", "models.policy", "models.packing", "models.invoice", "models.state",
    "models.transitions", "models.features", "models.scoring", "models.alerts",
    "models.processor", "models.engine", "models.outputs", "models.linear",
    "schemas.codec", "schemas.events", "schemas.records", "schemas.fields",
)

Build = Literal["compiled", "pure", "partial"]


def is_compiled(module_name: str) -> bool:
    """True when ``module_name`` was (or now is) imported from an extension module."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that run compiled in this process."""
    return [name for name in COMPILED if is_compiled(name)]


def core_build() -> Build:
    """``"compiled"`` when every module of :data:`COMPILED` runs compiled, ``"pure"`` when
    none does, ``"partial"`` in between (a module failed to build, or a stale tree)."""
    compiled = len(compiled_modules())
    if compiled == len(COMPILED):
        return "compiled"
    return "pure" if compiled == 0 else "partial"


def stale_modules() -> list[str]:
    """Compiled modules built in place (a source tree with ``setup.py``) whose ``.py`` was
    edited since: what runs is not what the file says until ``make native``. Installed
    copies in site-packages are not checked (pip does not keep build-time mtimes)."""
    stale = []
    for name in compiled_modules():
        binary = Path(sys.modules[name].__file__ or "")
        source = binary.with_name(name.rpartition(".")[2] + ".py")
        if ((binary.parent.parent / "setup.py").is_file() and source.is_file()
                and source.stat().st_mtime > binary.stat().st_mtime):
            stale.append(name)
    return stale


def cython_version() -> str | None:
    """The Cython version that built the compiled core, or None when the source runs.

    Cython 3 functions share a type registered under ``_cython_<version>``; read it there.
    """
    for name in compiled_modules():
        module = sys.modules[name]
        for value in vars(module).values():
            kind = type(value)
            if kind.__name__ == "cython_function_or_method":
                abi = kind.__module__  # e.g. "_cython_3_3_1"
                if abi.startswith("_cython_"):
                    return abi.removeprefix("_cython_").replace("_", ".")
    return None


def arscore_version() -> str:
    """The installed distribution's version (``"unknown"`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("arscore")
    except PackageNotFoundError:
        return "unknown"


def describe() -> str:
    """One line for ``arscore --version``, the worker's first log line and the docs.

        >>> describe().startswith("core: ")
        True
    """
    build = core_build()
    stale = stale_modules()
    warning = f"; STALE, edited since built: {', '.join(stale)} (make native)" if stale else ""
    if build == "compiled":
        version = cython_version()
        return (f"core: compiled (Cython {version})" if version else "core: compiled (Cython)") + warning
    if build == "partial":
        return f"core: partly compiled ({len(compiled_modules())} of {len(COMPILED)} modules){warning}"
    if pure_forced():
        return f"core: pure Python ({PURE_ENV} is set)"
    return "core: pure Python (no C compiler at install)"
