"""ResNet-50 from torchvision."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from braintumor.models.pretrained import adapt_imagenet_model
from braintumor.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model


@register_model(image_size=224, gradcam_layer="layer4", pretrained=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def resnet50(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """ResNet-50 (torchvision, 23.5 M parameters + head); ImageNet weights downloaded once (80.9% top-1)."""
    # IMAGENET1K_V2 pinned, not DEFAULT: the weights a name stands for must not change with torchvision.
    return adapt_imagenet_model(
        tvm.resnet50(),
        stem="conv1",
        head="fc",
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        weights=tvm.ResNet50_Weights.IMAGENET1K_V2 if pretrained else None,
        name="resnet50",
    )
