"""MobileNetV2 from torchvision."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from braintumor.models.pretrained import adapt_imagenet_model
from braintumor.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model


@register_model(image_size=224, gradcam_layer="features.18", pretrained=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def mobilenet_v2(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """MobileNetV2 (torchvision, 2.2 M parameters + head); ImageNet weights downloaded once (72.2% top-1)."""
    # IMAGENET1K_V2 pinned, not DEFAULT: the weights a name stands for must not change with torchvision.
    return adapt_imagenet_model(
        tvm.mobilenet_v2(),
        stem="features.0.0",
        head="classifier",
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        weights=tvm.MobileNet_V2_Weights.IMAGENET1K_V2 if pretrained else None,
        name="mobilenet_v2",
    )
