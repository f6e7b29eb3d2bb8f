"""`train --resume`: it loads no code, refuses damaged checkpoints and ends where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from braintumor.cli import main
from braintumor.training import fit as fit_module

from .conftest import TINY


def _args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--cache-dir", str(cache), *TINY, *extra]


class _PowerCut(L.Callback):
    """Stops a run with an error as epoch `at` starts: after the checkpoint of epoch `at - 1` is written."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.at:
            raise RuntimeError("power cut")


def _last_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(square_data: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    # augmentation and shuffling both draw from the generators that the checkpoint now carries
    steps = ["--epochs", "3", "--early-stop-patience", "10", "--lr", "3e-3"]
    assert main(_args(square_data, tmp_path / "whole", cache, *steps)) == 0
    whole = _last_weights(tmp_path / "whole")

    build = fit_module.build_trainer

    def interrupted(cfg, out, progress=True):
        trainer = build(cfg, out, progress)
        trainer.callbacks.append(_PowerCut(at=2))
        return trainer

    monkeypatch.setattr(fit_module, "build_trainer", interrupted)
    with pytest.raises(RuntimeError, match="power cut"):
        main(_args(square_data, tmp_path / "cut", cache, *steps))
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(fit_module, "build_trainer", build)
    assert main([*_args(square_data, tmp_path / "cut", cache, *steps), "--resume"]) == 0
    resumed = _last_weights(tmp_path / "cut")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


def test_resume_never_unpickles_code_from_a_planted_checkpoint(square_data: Path, tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(_args(square_data, out, cache, "--epochs", "1")) == 0
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # runs when unpickled

    torch.save({"epoch": 0, "state_dict": {}, "x": Payload()}, out / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main([*_args(square_data, out, cache, "--epochs", "2"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint ran code"
    assert "refused" in err and "could run code" in err and "Traceback" not in err


def test_resume_from_a_truncated_checkpoint_says_so(square_data: Path, tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(_args(square_data, out, cache, "--epochs", "1")) == 0
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    capsys.readouterr()
    assert main([*_args(square_data, out, cache, "--epochs", "2"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{last}: cannot be read as a checkpoint; it is truncated or damaged" in err
    assert "Traceback" not in err
