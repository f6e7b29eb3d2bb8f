"""`braintumor average`: weight averaging (WiSE-FT / model soups) of models that share a split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from braintumor.cli import main
from braintumor.inference import load_predictor
from braintumor.io import read_scan
from braintumor.training.average import average_models, average_state_dicts

from .conftest import TINY, make_square_dataset, make_weak_folder


def _train(square_data: Path, tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    args = ["train", "--data", str(square_data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    assert main([*args, "--epochs", "1", "--lr", "3e-3", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run and the same run fine-tuned on coarse labels from its weights: the WiSE-FT situation."""
    tmp_path = tmp_path_factory.mktemp("pair")
    square_data = make_square_dataset(tmp_path / "squares")
    start = _train(square_data, tmp_path, "start")
    weak = make_weak_folder(square_data, tmp_path)
    tuned = _train(
        square_data, tmp_path, "tuned", "--init-from", str(start), "--weak-data", str(weak), "--weak-labels",
        "marked=square", "--freeze-epochs", "0", "--lr", "1e-2",
    )  # fmt: skip
    return start, tuned


def test_average_is_the_weighted_mean_and_can_be_calibrated_and_served(
    pair: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    start, tuned = pair
    out = tmp_path / "avg"
    assert main(["average", str(start), str(tuned), "--weights", "1", "3", "--out", str(out)]) == 0
    assert f"braintumor calibrate --model {out}" in capsys.readouterr().out

    a, b, c = (load_file(p / "model.safetensors") for p in (start, tuned, out))
    assert set(c) == set(a)
    for key, value in c.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * a[key] + 0.75 * b[key])
        else:  # BatchNorm's batch counter comes from the first model
            assert torch.equal(value, a[key])
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())

    meta = json.loads((out / "model.json").read_text())
    assert meta["tta"] == "none" and meta["temperature"] == 1.0
    ingredients = meta["extra"]["averaged_from"]
    assert [i["weight"] for i in ingredients] == [0.25, 0.75]
    assert [i["weights_sha256"] for i in ingredients] == [
        json.loads((p / "model.json").read_text())["weights_sha256"] for p in (start, tuned)
    ]
    # It learnt from the coarse scans too, so they stay on record (benchmarks/external_probe.py audits them).
    assert meta["config"]["weak_data"] == str(start.parent / "coarse")
    assert meta["config"]["weak_labels"] == "marked=square"

    # Same split as both ingredients, so calibrate rebuilds it and chooses there.
    assert main(["calibrate", "--model", str(out), "--quiet"]) == 0
    val_n = json.loads((start / "val_metrics.json").read_text())["n"]
    assert json.loads((out / "model.json").read_text())["metrics"]["validation"]["n"] == val_n
    scan = next((start.parent / "squares" / "Training" / "square").iterdir())
    probs = load_predictor(out).predict_scans([read_scan(scan)])[0].probabilities
    assert sum(probs.values()) == pytest.approx(1.0)


def test_weights_one_and_zero_give_back_the_first_model(pair: tuple[Path, Path], tmp_path: Path) -> None:
    start, tuned = pair
    average_models([start, tuned], [1.0, 0.0], tmp_path / "same")
    a, c = load_file(start / "model.safetensors"), load_file(tmp_path / "same" / "model.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_models_from_different_splits_or_architectures_are_refused(
    pair: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    start, _ = pair
    square_data = start.parent / "squares"  # the same data: only the seed differs
    other_seed = _train(square_data, tmp_path, "seed1", "--seed", "1")
    assert main(["average", str(start), str(other_seed), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "different splits (seed: 1 vs 42)" in err and str(other_seed) in err
    assert not (tmp_path / "x" / "model.safetensors").exists()

    wider = _train(square_data, tmp_path, "wide", "--image-size", "48")
    with pytest.raises(ValueError, match="differ in image_size"):
        average_models([start, wider], None, tmp_path / "y")


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0], "1 weights for 2 models"), ([1.0, -1.0], "must be >= 0"), ([0.0, 0.0], "not all 0")],
)
def test_bad_weights_are_refused(pair: tuple[Path, Path], tmp_path: Path, weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        average_models(list(pair), weights, tmp_path / "z")


def test_one_model_or_an_existing_output_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    start, tuned = pair
    with pytest.raises(ValueError, match="at least two models"):
        average_models([start], None, tmp_path / "z")
    with pytest.raises(ValueError, match="already holds a model"):
        average_models([start, tuned], None, tuned)


def test_state_dicts_of_different_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="w has shapes"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}], [0.5, 0.5])
