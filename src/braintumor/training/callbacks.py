"""Callbacks beyond Lightning's own: two-stage fine-tuning and a per-rank weights fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning

from braintumor.training.module import classifier_head


class FreezeBackbone(BaseFinetuning):
    """Train only the classifier head for `epochs` epochs, then the whole network at lr * `lr_factor`.

    Built on Lightning's BaseFinetuning so the unfrozen parameters join the optimiser as their own
    param group (with their own lr) instead of a hand-rolled loop branch.
    """

    def __init__(self, epochs: int, lr_factor: float) -> None:
        super().__init__()
        self.epochs = epochs
        self.lr_factor = lr_factor

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(pl_module.model, train_bn=False)
        for p in classifier_head(pl_module.model).parameters():
            p.requires_grad = True

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch != self.epochs:
            return
        head_params = set(classifier_head(pl_module.model).parameters())
        frozen = [p for p in pl_module.model.parameters() if p not in head_params]
        for p in frozen:
            p.requires_grad = True
        lr = optimizer.param_groups[0]["lr"] * self.lr_factor
        optimizer.add_param_group({"params": frozen, "lr": lr})
        pl_module.model.train()


class WeightsFingerprint(L.Callback):
    """Writes a SHA-256 of every rank's final weights to OUT/fingerprints/rank{N}.txt.

    In data-parallel training all ranks must end with identical weights; the files let a user (and
    the DDP test) check that without loading anything.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.txt").write_text(digest.hexdigest() + "\n")
