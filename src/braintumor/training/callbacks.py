"""Callbacks beyond Lightning's own: two-stage fine-tuning and a per-rank weights fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch.nn.modules.batchnorm import _BatchNorm

from braintumor.training.module import classifier_head


class FreezeBackbone(BaseFinetuning):
    """Train only the classifier head for `epochs` epochs, then the whole network at lr * `lr_factor`.

    Built on Lightning's BaseFinetuning so the unfrozen parameters join the optimiser as their own
    param group (with their own lr, restored on --resume). While frozen, BatchNorm layers run in eval
    mode on their ImageNet running statistics: Lightning's `freeze(train_bn=False)` instead switches
    off `track_running_stats`, which makes BN normalise with batch statistics in training but with
    the stored ones in validation, a train/eval mismatch that wrecks a linear probe.
    """

    def __init__(self, epochs: int, lr_factor: float) -> None:
        super().__init__()
        self.epochs = epochs
        self.lr_factor = lr_factor

    @staticmethod
    def _backbone(pl_module: L.LightningModule) -> list[torch.nn.Module]:
        head = classifier_head(pl_module.model)
        return [m for m in pl_module.model.modules() if not list(m.children()) and m is not head]

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        backbone = self._backbone(pl_module)
        self.freeze(backbone, train_bn=False)
        for m in backbone:
            if isinstance(m, _BatchNorm):
                m.track_running_stats = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)  # calls finetune_function
        if trainer.current_epoch < self.epochs:
            for m in self._backbone(pl_module):
                if isinstance(m, _BatchNorm):
                    m.eval()

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch != self.epochs:
            return
        backbone = self._backbone(pl_module)
        lr = optimizer.param_groups[0]["lr"] * self.lr_factor
        self.unfreeze_and_add_param_group(backbone, optimizer, lr=lr, train_bn=True)
        for m in backbone:
            m.train()


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
