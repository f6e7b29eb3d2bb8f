"""EfficientNet-B0 from torchvision (SiLU and squeeze-and-excitation; compare `efficientnet_lite0`)."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from braintumor.models.pretrained import adapt_imagenet_model
from braintumor.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model


@register_model(image_size=224, gradcam_layer="features.8", pretrained=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def efficientnet_b0(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """EfficientNet-B0 (torchvision, 4.0 M parameters + head); ImageNet weights downloaded once (77.7% top-1)."""
    return adapt_imagenet_model(
        tvm.efficientnet_b0(),
        stem="features.0.0",
        head="classifier",
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        weights=tvm.EfficientNet_B0_Weights.IMAGENET1K_V1 if pretrained else None,
        name="efficientnet_b0",
    )
