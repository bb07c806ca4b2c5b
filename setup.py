"""The optional compiled core: Cython 3 compiles the core's own ``.py`` files (pure-Python
mode; no ``.pyx``, no second implementation). The module list is ``models/build.py``'s.

Everything else is in ``pyproject.toml``. Without a C compiler (or with
``ARSCORE_PURE_PYTHON=1``) the extensions are skipped and arscore runs the source.
``ARSCORE_BUILD_JOBS`` sets the parallel compile jobs (default: one per CPU).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILD = ROOT / "models" / "build.py"


def _module_list() -> tuple[str, ...]:
    # Read models/build.py's COMPILED without importing the package (it may not import yet).
    for node in ast.parse(BUILD.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "COMPILED":
            return tuple(ast.literal_eval(node.value))  # type: ignore[arg-type]
    raise RuntimeError(f"no COMPILED in {BUILD}")


def _pure() -> bool:
    return os.environ.get("ARSCORE_PURE_PYTHON", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """Compile in parallel; a failed compile (no compiler) warns and installs the source."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = int(os.environ.get("ARSCORE_BUILD_JOBS", "0")) or os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler must not fail the install
            self.warn(f"arscore: compiled core not built ({exc}); the pure Python core will run")

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.warn(f"arscore: {ext.name} not compiled ({exc}); its source will run")


def _extensions() -> list:  # type: ignore[type-arg]
    if _pure():
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # an install without build isolation and without Cython
        return []
    from setuptools import Extension

    modules = [
        Extension(name, [name.replace(".", "/") + ".py"], optional=True)
        for name in _module_list()
    ]
    return cythonize(
        modules,
        language_level=3,
        build_dir="build/cython",  # the generated C stays out of the source tree
        nthreads=int(os.environ.get("ARSCORE_BUILD_JOBS", "0")) or os.cpu_count() or 1,
        quiet=True,
        compiler_directives={"binding": True, "embedsignature": False},
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
