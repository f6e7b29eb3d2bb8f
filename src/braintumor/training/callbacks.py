"""Callbacks beyond Lightning's own: two-stage fine-tuning, a per-rank weights fingerprint, RNG state."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import lightning as L
import numpy as np
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


class RandomState(L.Callback):
    """Stores the random generators' state (Python, NumPy, torch CPU and CUDA) in every checkpoint.

    Lightning restores weights, optimiser, schedulers and loop counters on `--resume`, but not the
    generators that shuffle batches, seed worker processes and draw augmentations: without them a resumed
    run replays epoch 0's draws and ends with other weights than an uninterrupted one. The state is kept
    as tensors, ints and tuples, so the checkpoint still loads with `torch.load(weights_only=True)`.
    """

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        random.setstate(state_dict["python"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
