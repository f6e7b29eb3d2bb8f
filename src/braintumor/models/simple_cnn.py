"""A small CNN for tumour / no-tumour screening, trained from scratch (the Chakrabarty-style baseline)."""

from __future__ import annotations

import torch
from torch import nn

from braintumor.models.registry import register_model

_STAGES = 4


class SimpleCNN(nn.Module):
    """Four conv-BN-ReLU-max-pool stages (width, 2x, 4x, 8x channels), global average pool, dropout, linear."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.2, width: int = 32) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        layers: list[nn.Module] = []
        c_in = in_chans
        for i in range(_STAGES):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# features.14 is the last ReLU, before the final max-pool (stage i occupies features.4i .. 4i+3).
@register_model(image_size=128, gradcam_layer=f"features.{4 * (_STAGES - 1) + 2}")
def simple_cnn(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float, width: int = 32) -> nn.Module:
    """Small 4-stage CNN for tumour / no-tumour (base width 32: 0.39 M parameters); trained from scratch."""
    return SimpleCNN(num_classes, in_chans, drop_rate, width)
