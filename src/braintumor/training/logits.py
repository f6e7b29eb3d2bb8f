"""Logits of a network over a data loader: what validation, calibration and evaluation all score."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from braintumor.models import LoadedModel
from braintumor.models.tta import inference_model, with_tta


@torch.no_grad()
def loader_logits(
    model: nn.Module, batches: Iterable, *, device: torch.device, num_classes: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K) float32, labels (N,)) of every `(x, y)` batch, in order; the model in eval mode.

    `progress` shows a bar counting scans (the loader's dataset length when it has one).
    """
    model = model.to(device).eval()
    logits, labels = [], []
    total = len(batches.dataset) if hasattr(batches, "dataset") else None
    with tqdm(total=total, desc="predicting", unit="scan", disable=not progress, file=sys.stderr) as bar:
        for x, y in batches:
            logits.append(model(x.to(device)).float().cpu())
            labels.append(torch.as_tensor(y))
            bar.update(len(x))
    if not logits:
        return np.zeros((0, num_classes), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def predict_logits(
    loaded: LoadedModel,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    workers: int = 0,
    device: str | None = None,
    progress: bool = False,
    tta: str | None = None,
) -> np.ndarray:
    """Raw logits (N, K) of every scan of `dataset`, in order.

    `tta` overrides the model's own test-time augmentation (used to compare modes on validation);
    `device` None: cuda when available.
    """
    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = inference_model(loaded) if tta is None else with_tta(loaded.model, tta)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    return loader_logits(model, loader, device=where, num_classes=loaded.num_classes, progress=progress)[0]
