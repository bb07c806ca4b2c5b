"""Which core runs (models/build.py), and the three places that say it: ``arscore
--version``, the worker's first log line and the ``arscore_build_info`` metric.

CI sets ``ARSCORE_REQUIRE_COMPILED=1`` for the compiled run: there a missing or partial
build fails here instead of silently testing the source twice.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from models.build import COMPILED, compiled_modules, core_build, describe, pure_forced
from streams.cli import main
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def test_every_compiled_module_is_core_source() -> None:
    for name in COMPILED:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name
    # build.py decides which core loads and must run before any compiled module;
    # model.py holds River pipelines that checkpoints pickle
    assert "models.build" not in COMPILED and "models.model" not in COMPILED


def test_setup_compiles_what_build_lists() -> None:
    code = (ROOT / "setup.py").read_text()
    assert "COMPILED" in code and "models\" / \"build.py" in code


def test_the_build_is_reported_consistently() -> None:
    build = core_build()
    compiled = compiled_modules()
    if pure_forced():
        assert build == "pure" and compiled == []
        for name in COMPILED:
            assert importlib.import_module(name).__file__.endswith(".py"), name
    assert build == {0: "pure", len(COMPILED): "compiled"}.get(len(compiled), "partial")
    assert describe().startswith({"pure": "core: pure Python", "compiled": "core: compiled (Cython ",
                                  "partial": "core: partly compiled"}[build])


@pytest.mark.skipif(not os.environ.get("ARSCORE_REQUIRE_COMPILED"), reason="CI's compiled run only")
def test_ci_runs_the_compiled_core() -> None:
    assert not pure_forced()
    assert core_build() == "compiled", describe()


def test_the_switch_makes_the_source_run() -> None:
    env = {**os.environ, "ARSCORE_PURE_PYTHON": "1"}
    probe = ("import importlib, models.build as b; "
             "print(b.core_build(), all(importlib.import_module(m).__file__.endswith('.py') "
             "for m in b.COMPILED))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["pure", "True"]
    version = subprocess.run([sys.executable, "-m", "streams.cli", "--version"], env=env,
                             capture_output=True, text=True, check=True).stdout
    assert version.splitlines()[1] == "core: pure Python (ARSCORE_PURE_PYTHON is set)"


def test_version_says_which_core_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("arscore ") and lines[1] == describe()


def test_the_build_is_a_metric_label() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    samples = [s for metric in registry.collect() if metric.name == "arscore_build_info"
               for s in metric.samples]
    assert len(samples) == 1 and samples[0].value == 1
    assert samples[0].labels["core"] == core_build()
    assert samples[0].labels["cython"] == ("" if core_build() == "pure" else samples[0].labels["cython"])


def test_an_in_place_build_older_than_its_source_is_called_stale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import models.build as build

    (tmp_path / "setup.py").write_text("")
    (tmp_path / "pkg").mkdir()
    binary = tmp_path / "pkg" / "mod.cpython-311-x86_64-linux-gnu.so"
    source = tmp_path / "pkg" / "mod.py"
    binary.write_bytes(b"")
    source.write_text("")
    module = types.ModuleType("pkg.mod")
    module.__file__ = str(binary)
    monkeypatch.setitem(sys.modules, "pkg.mod", module)
    monkeypatch.setattr(build, "compiled_modules", lambda: ["pkg.mod"])
    os.utime(binary, (1_000_000, 1_000_000))
    os.utime(source, (1_000_000, 1_000_000))
    assert build.stale_modules() == []
    os.utime(source, (1_000_100, 1_000_100))
    assert build.stale_modules() == ["pkg.mod"]
    (tmp_path / "setup.py").unlink()  # an installed copy: not checked
    assert build.stale_modules() == []
