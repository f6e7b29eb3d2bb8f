"""Two-stage fine-tuning: the backbone (BatchNorm statistics included) stays fixed, then trains."""

from __future__ import annotations

from pathlib import Path

import torch

from braintumor.training.config import TrainConfig
from braintumor.training.fit import fit


def _fit(data: Path, tmp: Path, epochs: int, out: str, resume: bool = False) -> dict:
    """Train (or resume) a 1-frozen-epoch vgg_bn run; the last checkpoint (weights after the last epoch)."""
    cfg = TrainConfig.from_sources(
        data=str(data),
        out=str(tmp / out),
        cache_dir=str(tmp / "cache"),
        arch="vgg_bn",
        pretrained=False,
        image_size=64,
        batch_size=8,
        num_workers=0,
        epochs=epochs,
        freeze_epochs=1,
        seed=0,
        early_stop_patience=10,
        resume=resume,
    )
    fit(cfg, progress=False)
    return torch.load(Path(cfg.out) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _weights(state: dict) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}


def _run(data: Path, tmp: Path, epochs: int) -> dict[str, torch.Tensor]:
    # the weights after the last epoch (the exported model is the best epoch, which may be an earlier one)
    return _weights(_fit(data, tmp, epochs, f"run{epochs}"))


def test_frozen_epoch_changes_only_the_head_then_all_layers_train(square_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    from braintumor.models import create_model

    initial = create_model("vgg_bn", num_classes=2, in_chans=3, pretrained=False)
    after_frozen = _run(square_data, tmp_path, epochs=1)
    after_unfrozen = _run(square_data, tmp_path, epochs=2)
    head = [k for k in after_frozen if k.startswith(next(iter(reversed(after_frozen))).rsplit(".", 1)[0])]
    bn_stats = [k for k in after_frozen if k.endswith("running_mean")]
    assert bn_stats, "vgg_bn has BatchNorm layers"
    init = initial.state_dict()
    # seed_everything(0) inside fit makes both runs start from the same weights as this model
    for k in bn_stats:
        assert torch.equal(after_frozen[k], init[k]), f"{k} moved while the backbone was frozen"
    backbone = [k for k in after_frozen if k not in head and not k.endswith("num_batches_tracked")]
    for k in backbone:  # held at lr 0 (weights, biases, BN affine and statistics): bit-identical
        assert torch.equal(after_frozen[k], init[k]), f"{k} moved while the backbone was frozen"
    assert any(not torch.equal(after_frozen[k], init[k]) for k in head), "the head did not train"
    assert any(not torch.equal(after_unfrozen[k], init[k]) for k in bn_stats), "backbone BN never updated"


def test_resume_after_the_unfreezing_epoch_keeps_training_the_backbone(square_data: Path, tmp_path: Path) -> None:
    # The backbone's lr lives in the optimiser state the checkpoint restores; it used to be frozen again.
    first = _run(square_data, tmp_path, epochs=2)
    state = _fit(square_data, tmp_path, 3, "run2", resume=True)
    resumed = _weights(state)
    convs = [k for k in first if k.endswith(".weight") and first[k].ndim == 4]
    assert convs and all(not torch.equal(first[k], resumed[k]) for k in convs), "a conv layer stayed frozen"
    lrs = [g["lr"] for g in state["optimizer_states"][0]["param_groups"]]
    assert len(lrs) == 2 and lrs[1] > 0
