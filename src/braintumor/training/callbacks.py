"""Callbacks beyond Lightning's own: two-stage fine-tuning and a per-rank weights fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from braintumor.training.module import classifier_head


class FreezeBackbone(L.Callback):
    """Train only the classifier head for `epochs` epochs, then the whole network at lr * `lr_factor`.

    The backbone is held still by its optimiser group's learning rate (0 while frozen; see
    `ClassifierModule.configure_optimizers`), not by `requires_grad`: DistributedDataParallel decides
    once, when it wraps the model, which parameters' gradients it averages across ranks, so parameters
    that start frozen and are switched on later (Lightning's BaseFinetuning) would then train apart on
    every GPU. The group's lr is also what a checkpoint stores, so `--resume` after the unfreezing epoch
    goes on training the backbone. The price is a backward pass through the backbone in frozen epochs.

    While frozen, BatchNorm layers of the backbone run in eval mode on their (ImageNet) running
    statistics, so neither the statistics nor the train/eval behaviour move. Adam's update is lr times
    a bounded step (weight decay included), so at lr 0 the backbone weights stay bit-identical.
    """

    def __init__(self, epochs: int, lr_factor: float) -> None:
        super().__init__()
        self.epochs = epochs
        self.lr_factor = lr_factor

    @staticmethod
    def _backbone_modules(pl_module: L.LightningModule) -> list[torch.nn.Module]:
        head = classifier_head(pl_module.model)
        return [m for m in pl_module.model.modules() if not list(m.children()) and m is not head]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        head_group, backbone_group = optimizer.param_groups[:2]
        if trainer.current_epoch < self.epochs:
            backbone_group["lr"] = 0.0
            for m in self._backbone_modules(pl_module):
                if isinstance(m, _BatchNorm):
                    m.eval()
        else:
            if backbone_group["lr"] == 0.0:  # the first epoch after the frozen ones (not again after --resume)
                backbone_group["lr"] = head_group["lr"] * self.lr_factor
                # Adam starts the backbone afresh, as when the group is first added: moments gathered at
                # lr 0 are no history of its own steps (and the recipe's results stay reproducible)
                for param in backbone_group["params"]:
                    optimizer.state.pop(param, None)
            # Lightning restores each module's mode after validation, so BN layers set to eval stay so
            for m in self._backbone_modules(pl_module):
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
