"""The compiled core and its source give byte-identical results.

``arscore replay`` runs twice in subprocesses over the same streams: once as installed
(the Cython build when there is one) and once with ``ARSCORE_PURE_PYTHON=1``, which makes
``models`` and ``schemas`` import their ``.py`` files. Outputs, dead letters (their
wall-clock ``failed_at`` aside), final states and the summary (its timings aside) must be
equal byte for byte. The streams: the two golden ones (every event type, disorder,
duplicates, bad input) and a simulated ledger long enough for the model to learn, labels
to resolve and invoices to fall due without an event.

Skipped when no compiled core is installed (nothing to compare); CI sets
``ARSCORE_REQUIRE_COMPILED=1``, and ``tests/unit/test_build.py`` then fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

HERE = Path(__file__).parent

RUN = """
import sys
from models.build import core_build
from streams.cli import main
code = main(sys.argv[1:])
sys.stderr.write("\\nBUILD=" + core_build() + "\\n")
sys.exit(code)
"""

STREAMS = {
    "mixed": ("--reorder-hours", "6"),
    "plain": ("--partitions", "4", "--reorder-hours", "12"),
    "simulated": ("--partitions", "2", "--reorder-hours", "1"),
}


def _env(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARSCORE_PURE_PYTHON"}
    if pure:
        env["ARSCORE_PURE_PYTHON"] = "1"
    return env


def _run(args: list[str], *, pure: bool, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", RUN, *args], env=_env(pure), cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr.rsplit("BUILD=", 1)[1].strip()


def _replay(events: Path, flags: tuple[str, ...], out: Path, *, pure: bool) -> dict[str, bytes]:
    out.mkdir()
    build = _run(["replay", str(events), "-o", str(out / "out.jsonl"),
                  "--dead-letter", str(out / "dead.jsonl"), "--state-out", str(out / "states.jsonl"),
                  "--summary-json", str(out / "summary.json"), *flags], pure=pure, cwd=out)
    assert build == ("pure" if pure else "compiled"), build
    summary = orjson.loads((out / "summary.json").read_bytes())
    summary.pop("seconds")
    summary.pop("events_per_second")
    dead = [orjson.loads(line) for line in (out / "dead.jsonl").read_bytes().splitlines()]
    for letter in dead:
        letter.pop("failed_at", None)
    return {
        "outputs": (out / "out.jsonl").read_bytes(),
        "deadletters": b"\n".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in dead),
        "states": (out / "states.jsonl").read_bytes(),
        "summary": orjson.dumps(summary, option=orjson.OPT_SORT_KEYS),
    }


@pytest.fixture(scope="module")
def compiled_installed() -> None:
    from models.build import compiled_modules

    if not compiled_modules() and os.environ.get("ARSCORE_PURE_PYTHON", "") in ("", "0"):
        pytest.skip("no compiled core installed (no C compiler at install): nothing to compare")
    if os.environ.get("ARSCORE_PURE_PYTHON", "") not in ("", "0"):
        # this session runs the source; ask a child with the switch off what is installed
        probe = subprocess.run([sys.executable, "-c", "from models.build import core_build as b; print(b())"],
                               env=_env(False), capture_output=True, text=True, check=True)
        if probe.stdout.strip() == "pure":
            pytest.skip("no compiled core installed (no C compiler at install): nothing to compare")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "simulated.jsonl"
    _run(["simulate", "--customers", "400", "--days", "240", "--seed", "17", "-o", str(path)],
         pure=True, cwd=path.parent)
    return path


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_replay_is_byte_identical_compiled_and_pure(stream: str, compiled_installed: None,
                                                     simulated: Path, tmp_path: Path) -> None:
    events = simulated if stream == "simulated" else HERE / f"{stream}.jsonl"
    compiled = _replay(events, STREAMS[stream], tmp_path / "compiled", pure=False)
    pure = _replay(events, STREAMS[stream], tmp_path / "pure", pure=True)
    assert compiled["outputs"], "the replay sent nothing: the comparison would mean nothing"
    for part in ("outputs", "deadletters", "states", "summary"):
        assert compiled[part] == pure[part], f"{stream}: {part} differ between compiled and pure"
