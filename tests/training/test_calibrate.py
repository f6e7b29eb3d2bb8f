"""`braintumor calibrate`: rebuilds the run's validation split, chooses test-time augmentation there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braintumor.cli import main
from braintumor.inference import load_predictor
from braintumor.models import load_model

from .conftest import TINY


@pytest.fixture()
def run(square_data: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    args = ["train", "--data", str(square_data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    assert main([*args, "--epochs", "1", "--lr", "3e-3"]) == 0
    return out


def test_calibrate_scores_both_modes_on_validation_and_writes_the_choice(run: Path, capsys) -> None:
    trained = json.loads((run / "val_metrics.json").read_text())
    weights = (run / "model.safetensors").read_bytes()
    assert main(["calibrate", "--model", str(run), "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"n = {trained['n']}" in out and "hflip" in out and "dry run" in out
    assert json.loads((run / "model.json").read_text())["tta"] == "none"

    assert main(["calibrate", "--model", str(run), "--quiet"]) == 0
    meta = json.loads((run / "model.json").read_text())
    candidates = meta["metrics"]["calibration_candidates"]
    assert set(candidates) == {"none", "hflip"} and meta["tta"] in candidates
    best = max(c["macro_f1"] for c in candidates.values())
    assert candidates[meta["tta"]]["macro_f1"] == best
    assert meta["temperature"] == pytest.approx(candidates[meta["tta"]]["temperature"])
    # Without TTA the refit reproduces training's own temperature: same split, same logits.
    assert candidates["none"]["temperature"] == pytest.approx(trained["temperature"], rel=1e-3)
    assert candidates["none"]["n"] == trained["n"]
    assert (run / "model.safetensors").read_bytes() == weights
    assert load_model(run).temperature == pytest.approx(meta["temperature"])


def test_forced_mode_and_changed_data_is_refused(run: Path, square_data: Path, capsys) -> None:
    assert main(["calibrate", "--model", str(run), "--tta", "hflip", "--quiet"]) == 0
    assert json.loads((run / "model.json").read_text())["tta"] == "hflip"
    for p in sorted((square_data / "Training" / "plain").iterdir())[:6]:
        p.unlink()
    assert main(["calibrate", "--model", str(run), "--quiet"]) == 2
    assert "validation split rebuilt" in capsys.readouterr().err


def test_a_run_whose_files_moved_is_named_and_can_be_relocated(run: Path, square_data: Path, capsys) -> None:
    # the model's config records absolute paths of the machine it was trained on
    moved = square_data.parent / "elsewhere" / square_data.name
    moved.parent.mkdir()
    square_data.rename(moved)
    assert main(["calibrate", "--model", str(run), "--dry-run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"training data {square_data}, which is not here" in err and "--relocate OLD=NEW" in err
    relocate = f"{square_data.parent}={moved.parent}"
    assert main(["calibrate", "--model", str(run), "--dry-run", "--quiet", "--relocate", relocate]) == 0
    assert "dry run" in capsys.readouterr().out
    assert main(["calibrate", "--model", str(run), "--relocate", "no-equals-sign"]) == 2
    assert "expected OLD=NEW" in capsys.readouterr().err


def test_training_with_tta_fits_the_temperature_on_mirror_averaged_logits(
    square_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(square_data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    assert main([*args, "--epochs", "1", "--tta", "hflip"]) == 0
    assert json.loads((out / "model.json").read_text())["tta"] == "hflip"
    assert json.loads((out / "val_metrics.json").read_text())["tta"] == "hflip"
    trained = json.loads((out / "val_metrics.json").read_text())
    assert main(["calibrate", "--model", str(out), "--tta", "hflip", "--dry-run", "--quiet"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("hflip"))
    assert float(row.split()[3]) == pytest.approx(trained["temperature"], abs=2e-3)


def test_export_fits_the_ood_check_on_the_models_own_split(run: Path, square_data: Path, capsys) -> None:
    trained = json.loads((run / "val_metrics.json").read_text())
    split = json.loads((run / "data.json").read_text())
    args = ["export", "--model", str(run), "--format", "none", "--ood-own-split", "--quiet"]
    assert main([*args, "--ood-max-per-class", "5"]) == 0
    info = json.loads((run / "model.ood.json").read_text())
    assert info["n_val"] == trained["n"] == split["val"]  # the whole validation split sets the threshold
    assert info["n_train"] == 10  # 5 per class of the training split, never a validation scan
    assert "own training split" in info["fitted_on"]
    assert "own training split" in load_predictor(run).card["ood"]["fitted_on"]  # GET /api/v1/model shows it
    assert "validation scans" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exc:  # one source or the other, as argparse says
        main([*args, "--ood-from", str(square_data)])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
    for p in sorted((square_data / "Training" / "plain").iterdir())[:6]:
        p.unlink()
    assert main(args) == 2  # the split can no longer be rebuilt: refused, not fitted on other scans
    assert "validation split rebuilt" in capsys.readouterr().err
