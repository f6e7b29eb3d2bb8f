"""The deterministic scan -> tensor pipeline of a trained model, shared by evaluation, inference and serving.

Training writes the settings into the checkpoint (`preprocess`, `normalization`, `in_chans`); every
consumer rebuilds exactly the same pipeline from them here, so no two places can drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from braintumor.data.preprocess import Preprocess
from braintumor.data.transforms import build_transforms
from braintumor.io import Scan


class ModelSettings(Protocol):
    """What a pipeline needs from a checkpoint (`braintumor.models.LoadedModel` has these)."""

    preprocess: dict[str, Any]
    normalization: dict[str, Any]
    in_chans: int
    image_size: int


@dataclass(frozen=True)
class ScanPipeline:
    """Preprocess (crop, square, resize) then normalise: scan -> float tensor (C, S, S)."""

    preprocess: Preprocess
    transform: Callable[[np.ndarray], torch.Tensor]

    @classmethod
    def from_settings(
        cls, preprocess: dict[str, Any], normalization: dict[str, Any], in_chans: int, image_size: int
    ) -> ScanPipeline:
        norm = dict(normalization)
        transform = build_transforms(
            None,
            train=False,
            in_chans=in_chans,
            mean=norm["mean"],
            std=norm["std"],
            per_scan_norm=bool(norm.get("per_scan_norm", False)),
        )
        return cls(Preprocess.from_dict(preprocess, image_size), transform)

    @classmethod
    def for_model(cls, model: ModelSettings) -> ScanPipeline:
        """The pipeline a loaded checkpoint was trained with."""
        return cls.from_settings(model.preprocess, model.normalization, model.in_chans, model.image_size)

    def image(self, scan: Scan | np.ndarray) -> np.ndarray:
        """The preprocessed uint8 (S, S) image the model sees (before normalisation)."""
        pixels = scan.as_uint8() if isinstance(scan, Scan) else scan
        return self.preprocess(pixels)

    def __call__(self, scan: Scan | np.ndarray) -> torch.Tensor:
        return self.transform(self.image(scan))
