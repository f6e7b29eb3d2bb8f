"""VGG-16-style networks with BatchNorm: `vgg_bn` (any width, trained from scratch) and `vgg16_bn` (ImageNet).

Both use the VGG-16 convolution stack (13 conv-BN-ReLU layers, 5 max-pools) built by torchvision's
`make_layers`, so module indices equal torchvision's and its `vgg16_bn` weights load unchanged. The head is
global average pooling, dropout and one Linear layer instead of VGG's two 4096-wide layers: those hold 120 M of
the 138 M parameters, are ImageNet-specific, would make every checkpoint 0.5 GB and fix the input at 224 px.
`vgg_bn` scales every layer's width (base 64; e.g. `width=8` gives a 0.23 M-parameter model for tests and
quick experiments), which is why it exists beside `vgg16_bn`; it has no pretrained weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.vgg import make_layers

from braintumor.models.pretrained import load_backbone, set_in_chans, torchvision_state_dict
from braintumor.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_LAST_RELU = "features.42"  # last ReLU before the final max-pool: the finest map that sees the whole network


class VGGBN(nn.Module):
    """VGG-16 convolution stack with BatchNorm, global average pool, dropout and a linear classifier."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.2, width: int = 64) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer (64 is VGG-16), got {width!r}")
        cfg = [v if v == "M" else v * width // 64 for v in _VGG16]
        self.features = make_layers(cfg, batch_norm=True)
        set_in_chans(self, "features.0", in_chans)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(cfg[-2], num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation; the default (uniform, a=sqrt(5)) trains deep VGGs more slowly.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model(image_size=224, gradcam_layer=_LAST_RELU)
def vgg_bn(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float, width: int = 64) -> nn.Module:
    """VGG-16-style CNN with BatchNorm, width configurable (base 64: 14.7 M parameters); trained from scratch."""
    return VGGBN(num_classes, in_chans, drop_rate, width)


@register_model(image_size=224, gradcam_layer=_LAST_RELU, pretrained=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def vgg16_bn(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """VGG-16 with BatchNorm (14.7 M parameters + head); ImageNet convolution weights from torchvision."""
    model = VGGBN(num_classes, in_chans, drop_rate)
    if pretrained:
        state = torchvision_state_dict(tvm.VGG16_BN_Weights.IMAGENET1K_V1, "vgg16_bn")
        load_backbone(model, state, stem="features.0", head="classifier", in_chans=in_chans)
    return model
