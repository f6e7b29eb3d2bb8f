"""Test-time augmentation stored with a model: the scan and its left-right mirror image, averaged.

Brain MRI is close to left-right symmetric and tumours occur on either side, so a mirrored scan is a
second, equally valid view; averaging the two lowers the variance of a prediction. Whether a model uses
it is recorded in its sidecar (`"tta": "hflip"`) and chosen on validation (`braintumor calibrate`), and
the calibration temperature is fitted on the averaged logits.

Both views go through the network as one batch of 2N; their penultimate features are averaged before
the linear head. For a linear head that equals averaging the logits, and the head's input (what the
OOD check reads) stays one feature vector per scan, so every consumer (PyTorch backend, ONNX export,
evaluation) works unchanged. Written here rather than taken from a TTA library (ttach): that library
averages outputs only and would leave the OOD features of a single view.
"""

from __future__ import annotations

import torch
from torch import nn

from braintumor.models.head import split_at_head

TTA_MODES = ("none", "hflip")


def tta_mode(meta: dict, source: object = "model") -> str:
    """The model's test-time augmentation ("none" when the sidecar does not say).

    Raises:
        ValueError: an unknown mode, naming `source`.
    """
    mode = meta.get("tta") or "none"
    if mode not in TTA_MODES:
        raise ValueError(f"{source}: unknown test-time augmentation '{mode}' (known: {', '.join(TTA_MODES)})")
    return mode


class FlipAverage(nn.Module):
    """`model` averaged over the input and its mirror image along the width axis (a copy; `model` is untouched)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.body, self.head = split_at_head(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        features = torch.flatten(self.body(torch.cat([x, x.flip(-1)])), 1)
        return self.head((features[:n] + features[n:]) / 2)


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """`model` wrapped for `mode` ("none" returns it as it is)."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation '{mode}' (known: {', '.join(TTA_MODES)})")
    return FlipAverage(model).eval() if mode == "hflip" else model


def inference_model(loaded) -> nn.Module:  # loaded: braintumor.models.LoadedModel
    """The network to predict with: `loaded.model`, wrapped for the test-time augmentation its sidecar names."""
    return with_tta(loaded.model, tta_mode(loaded.meta, loaded.meta.get("weights_file", "model")))
