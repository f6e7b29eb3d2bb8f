"""One name, one model: a decorator registers each builder, `create_model` is the only way models are made.

Modelled on timm's `_registry.py` / `_factory.py`, cut down to what this project needs: no aliases, no
pretrained tags, no hub lookups. A builder is a function `name(*, num_classes, in_chans, pretrained, drop_rate,
**options) -> nn.Module`; the decorator records what other code needs to know without building the model
(input size, normalization, whether ImageNet weights exist, the CAM layer). `create_model` checks the
arguments once, here, so every builder can assume they are valid, and tags the model with the arguments
that rebuild it (`creation_args`), which is what lets a checkpoint describe itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Builder = Callable[..., nn.Module]
_BUILDER_ARGS = ("num_classes", "in_chans", "pretrained", "drop_rate")


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model without building it.

    Attributes:
        name: the registry name.
        default_image_size: square input side in pixels the model is designed (or was pretrained) for.
        mean: per-channel RGB mean its pretrained weights expect, or None when it has no pretrained weights.
        std: per-channel RGB standard deviation to match `mean`, or None.
        has_pretrained: whether `create_model(name, pretrained=True)` can load ImageNet weights.
        gradcam_layer: module path (as for `nn.Module.get_submodule`) of the CAM layer (all methods hook it).
        options: extra keyword options the builder accepts (e.g. ``("width",)``).
        summary: one line describing the model (the builder's docstring).
        ood_stats_layer: module path of the layer whose channel statistics the OOD check adds to the
            penultimate features (`braintumor export` fits it so by default), or None for penultimate only.
    """

    name: str
    default_image_size: int
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    has_pretrained: bool
    gradcam_layer: str
    options: tuple[str, ...] = ()
    summary: str = ""
    ood_stats_layer: str | None = None

    def normalization(self, in_chans: int = 3) -> dict[str, list[float]] | None:
        """Mean/std for `in_chans` input channels (a 1-channel stem gets the channel average), or None."""
        if self.mean is None or self.std is None:
            return None
        if in_chans == 1:
            return {"mean": [sum(self.mean) / 3], "std": [sum(self.std) / 3]}
        return {"mean": list(self.mean), "std": list(self.std)}


_REGISTRY: dict[str, tuple[Builder, ModelInfo]] = {}


def register_model(
    *,
    image_size: int,
    gradcam_layer: str,
    pretrained: bool = False,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    ood_stats_layer: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder under its function name.

    Args:
        image_size: default square input side in pixels.
        gradcam_layer: module path of the layer the CAM methods should hook (e.g. ``"features.8"``).
        pretrained: whether the builder can load ImageNet weights.
        mean: RGB mean the pretrained weights expect (required when `pretrained`).
        std: RGB standard deviation the pretrained weights expect (required when `pretrained`).
        ood_stats_layer: see `ModelInfo.ood_stats_layer`.

    Returns:
        A decorator that records the builder and returns it unchanged.
    """
    if pretrained and (mean is None or std is None):
        raise ValueError("a model with pretrained weights must state the mean/std those weights expect")

    def decorate(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is already registered")
        params = inspect.signature(builder).parameters
        missing = [a for a in _BUILDER_ARGS if a not in params]
        if missing:
            raise TypeError(f"builder '{name}' must accept {', '.join(missing)}")
        options = tuple(p for p in params if p not in _BUILDER_ARGS)
        summary = (inspect.getdoc(builder) or "").split("\n", 1)[0]
        info = ModelInfo(name, image_size, mean, std, pretrained, gradcam_layer, options, summary, ood_stats_layer)
        _REGISTRY[name] = (builder, info)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[Builder, ModelInfo]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; available models: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_info(name: str) -> ModelInfo:
    """What is known about model `name` without building it. Raises ValueError for an unknown name."""
    return _lookup(name)[1]


def _check_args(info: ModelInfo, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans!r}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    if pretrained and not info.has_pretrained:
        raise ValueError(f"model '{info.name}' has no pretrained weights; train it from scratch (--no-pretrained)")


def create_model(
    name: str,
    *,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    drop_rate: float = 0.2,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model: the only way models are made in this project.

    Args:
        name: a name from `list_models()`.
        num_classes: number of output logits.
        in_chans: input channels, 1 (grayscale) or 3 (RGB).
        pretrained: load ImageNet weights (the classification head is always new and random).
        drop_rate: dropout probability before the classification head.
        **kwargs: model-specific options listed in `model_info(name).options` (e.g. ``width``).

    Returns:
        The model in training mode, with a `creation_args` dict attribute holding what rebuilds it.

    Raises:
        ValueError: unknown name, invalid argument or unsupported option.
        PretrainedWeightsUnavailable: `pretrained=True` and the weights cannot be found or downloaded.
    """
    builder, info = _lookup(name)
    _check_args(info, num_classes, in_chans, pretrained, drop_rate)
    unknown = sorted(set(kwargs) - set(info.options))
    if unknown:
        accepted = ", ".join(info.options) or "none"
        raise ValueError(f"model '{name}' has no option {', '.join(unknown)} (options it accepts: {accepted})")
    model = builder(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, drop_rate=drop_rate, **kwargs)
    model.creation_args = {
        "arch": name,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "drop_rate": drop_rate,
        "options": dict(kwargs),
    }
    return model


def arch_of(model: nn.Module) -> str:
    """Registry name of a model made by `create_model` (unwrapping `torch.compile`); ValueError otherwise."""
    model = getattr(model, "_orig_mod", model)
    args = getattr(model, "creation_args", None)
    if not isinstance(args, dict) or "arch" not in args:
        raise ValueError(f"{type(model).__name__} was not made by braintumor.models.create_model")
    return args["arch"]


def gradcam_layer(model: nn.Module, name: str | None = None) -> nn.Module:
    """The CAM target layer of a model made by `create_model`: its registry entry's, or the module path `name`.

    Raises:
        ValueError: `name` is not a module of the model.
    """
    inner = getattr(model, "_orig_mod", model)
    registered = model_info(arch_of(inner)).gradcam_layer
    try:
        return inner.get_submodule(name or registered)
    except AttributeError:
        raise ValueError(
            f"{arch_of(inner)} has no layer '{name}'; give a module path such as '{registered}' "
            "(see `model.named_modules()`)"
        ) from None
