"""Bootstrap a model from history, then warm-start replay and backtest from its checkpoint."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import orjson
import pytest

from models.features import FEATURE_NAMES
from models.model import PIPELINES, OnlineModel
from models.tools.simulator import SimulationConfig, simulate
from schemas.codec import dumps
from streams.cli import main
from streams.commands.replay import load_models
from streams.settings import Settings


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bootstrap") / "history.jsonl"
    cfg = SimulationConfig(customers=30, days=180, seed=21)
    path.write_bytes(b"".join(dumps(e) + b"\n" for e in simulate(cfg)))
    return path


def bootstrap(history: Path, out: Path, *extra: str) -> dict[str, object]:
    assert main(["bootstrap", str(history), "-o", str(out), *extra]) == 0
    meta = orjson.loads(Path(f"{out}.meta.json").read_bytes())
    assert isinstance(meta, dict)
    return meta


def test_bootstrap_writes_a_checkpoint_named_after_itself(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "acme-2024.ckpt"
    meta = bootstrap(history, ckpt)
    err = capsys.readouterr().err
    model = OnlineModel.from_bytes(ckpt.read_bytes())
    assert model.labels_seen == meta["labels_seen"] == meta["labels_learned"]
    assert isinstance(model.labels_seen, int) and model.labels_seen > 100
    assert model.version == meta["version"] == "logreg:acme-2024"
    assert f"{model.labels_seen:,} labels learned" in err and "version logreg:acme-2024" in err


def test_warm_start_carries_labels_and_names_the_checkpoint(
        history: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "hist.ckpt"
    meta = bootstrap(history, ckpt, "--until", "2024-04-01")
    learned = meta["labels_seen"]
    assert str(meta["last_event_at"]) < "2024-04-01"
    # what replay --warm-start and the worker (ARSCORE_WARM_START) load
    settings = Settings.from_env({"ARSCORE_WARM_START": str(ckpt)})
    (model,) = load_models(settings, 1, settings.warm_start)
    assert (model.labels_seen, model.version) == (learned, "logreg:hist")

    out = tmp_path / "scores.jsonl"
    assert main(["replay", str(history), "--warm-start", str(ckpt), "-o", str(out)]) == 0
    scores = [orjson.loads(line)["value"] for line in out.read_bytes().splitlines()
              if b'"ar.scores"' in line]
    assert scores[0]["model_version"] == "logreg:hist"
    assert scores[0]["labels_seen"] == learned
    assert scores[-1]["labels_seen"] > learned  # it keeps learning from there


def test_bootstrap_continues_from_a_checkpoint(history: Path, tmp_path: Path) -> None:
    first = bootstrap(history, tmp_path / "a.ckpt", "--until", "2024-04-01")
    second = bootstrap(history, tmp_path / "b.ckpt", "--warm-start", str(tmp_path / "a.ckpt"))
    assert second["labels_seen"] == first["labels_seen"] + second["labels_learned"]  # type: ignore[operator]
    assert second["version"] == "logreg:b"


def test_backtest_refuses_a_checkpoint_that_saw_the_evaluation_period(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "all.ckpt"
    bootstrap(history, ckpt, "--until", "2024-04-01")
    code = main(["backtest", str(history), "--eval-from", "2024-03-01", "-o",
                 str(tmp_path / "bt"), "--warm-start", str(ckpt)])
    assert code == 2
    assert "the checkpoint has seen events up to" in capsys.readouterr().err
    code = main(["backtest", str(history), "--eval-from", "2024-04-01", "-o",
                 str(tmp_path / "bt"), "--warm-start", str(ckpt)])
    assert code == 0
    metrics = orjson.loads((tmp_path / "bt" / "metrics.json").read_bytes())
    assert metrics["model"]["version"] == "logreg:all"


def test_bootstrap_rejects_an_unknown_model_kind(history: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap", str(history), "-o", str(tmp_path / "x"), "--model", "nope"]) == 2
    assert "unknown --model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", sorted(PIPELINES))
def test_every_pipeline_learns_and_survives_a_checkpoint(kind: str) -> None:
    rng = random.Random(2)
    model = OnlineModel(kind)
    xs = [array("d", [rng.gauss(0, 1) for _ in FEATURE_NAMES]) for _ in range(60)]
    for x in xs:
        model.learn(x, int(x[1] > 0), p_at_issue=model.predict(x))
    again = OnlineModel.from_bytes(model.to_bytes(), origin="ckpt")
    assert (again.kind, again.labels_seen, again.version) == (kind, 60, f"{kind}:ckpt")
    assert again.predict(xs[0]) == model.predict(xs[0])
