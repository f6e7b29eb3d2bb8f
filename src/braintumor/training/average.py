"""Average the weights of models trained from one starting point (WiSE-FT, model soups).

Models fine-tuned from the same pretrained weights usually lie in one basin of the loss, so a
weighted mean of their parameters is itself a good model, often better than either end on data
unlike its training data (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022;
"Model soups", ICML 2022). `average_models((a, b), (0.3, 0.7))` is the WiSE-FT interpolation
0.3 a + 0.7 b. It costs no training and the result is one model of the same size and speed.

The mean is taken over every floating-point tensor of the state dict, BatchNorm running statistics
included (as timm's ``avg_checkpoints.py`` does); integer buffers (BatchNorm's batch counter) come
from the first model. Written here rather than borrowed: it is a weighted sum over state dicts,
and what needs care is checking that the models can be averaged and that their common validation
split is still unseen by every one of them, so that `braintumor calibrate` can choose on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from braintumor.models import LoadedModel, load_model, save_checkpoint
from braintumor.models.default import resolve_model_path
from braintumor.training.module import SPLIT_FIELDS

# What a model must share with the others for their parameters to mean the same thing.
_SAME_MODEL = ("arch", "model_options", "class_names", "in_chans", "image_size", "preprocess", "normalization")
_WEAK_FIELDS = ("weak_data", "weak_labels", "weak_repeat")


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    ws = [float(w) for w in weights]
    if len(ws) != n:
        raise ValueError(f"average: {len(ws)} weights for {n} models; give one weight per model")
    if any(not w >= 0 for w in ws) or sum(ws) <= 0:
        raise ValueError(f"average: weights must be >= 0 and not all 0, got {ws}")
    return [w / sum(ws) for w in ws]


def _check_compatible(named: list[tuple[str, LoadedModel]]) -> dict:
    """The config the average is recorded with; ValueError naming the model and field that differ."""
    first_name, first = named[0]
    for name, loaded in named[1:]:
        for key in _SAME_MODEL:
            if loaded.meta.get(key) != first.meta.get(key):
                raise ValueError(
                    f"average: {name} and {first_name} differ in {key} ({loaded.meta.get(key)!r} vs "
                    f"{first.meta.get(key)!r}); only models of one architecture, classes and input can be averaged"
                )
    configs = [(name, loaded.meta.get("config")) for name, loaded in named]
    missing = [name for name, cfg in configs if not cfg or not cfg.get("data")]
    if missing:
        raise ValueError(
            f"average: {', '.join(missing)} records no training config, so nothing shows that the others' "
            "validation scans are unseen by it; average models trained by `braintumor train`"
        )
    base = dict(configs[0][1])
    for name, cfg in configs[1:]:
        for key in SPLIT_FIELDS:
            if cfg.get(key) != base.get(key):
                raise ValueError(
                    f"average: {name} and {first_name} were trained on different splits ({key}: {cfg.get(key)!r} vs "
                    f"{base.get(key)!r}); one model's validation scans would be another's training scans, so "
                    "nothing could be chosen on validation honestly"
                )
    weak = {tuple(cfg.get(k) for k in _WEAK_FIELDS) for _, cfg in configs if cfg.get("weak_data")}
    if len(weak) > 1:
        raise ValueError(
            "average: the models trained on different coarse-label sets (weak_data); the average learnt from "
            "all of them, but its config can record only one"
        )
    if weak:  # the average learnt from these scans too: keep them on record (external_probe audits them)
        base.update(zip(_WEAK_FIELDS, next(iter(weak)), strict=True))
    return base


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """sum_i weights[i] * states[i] for floating-point tensors (in float32), the first state's integer buffers.

    Raises:
        ValueError: the state dicts have different keys or shapes.
    """
    keys = list(states[0])
    out: dict[str, torch.Tensor] = {}
    for i, state in enumerate(states[1:], start=1):
        if list(state) != keys:
            raise ValueError(f"average: model {i + 1} has different parameters from model 1")
    for key in keys:
        tensors = [s[key] for s in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise ValueError(f"average: {key} has shapes {[tuple(t.shape) for t in tensors]}")
        if not tensors[0].is_floating_point():
            out[key] = tensors[0].clone()
            continue
        acc = weights[0] * tensors[0].float()
        for w, t in zip(weights[1:], tensors[1:], strict=True):
            acc = acc + w * t.float()
        out[key] = acc.to(tensors[0].dtype)
    return out


def average_models(models: Sequence[str | Path], weights: Sequence[float] | None, out: str | Path) -> Path:
    """Write the weighted average of `models` (run folders, checkpoints or "default") to `out`.

    The result is uncalibrated (temperature 1, no test-time augmentation): run `braintumor calibrate`
    on it, which rebuilds the split every model shares. Its sidecar records the ingredients, their
    weights and weight hashes under ``extra.averaged_from``.

    Raises:
        ValueError: fewer than two models, bad weights, or models that cannot be averaged (different
            architecture, classes, input, or training split).
            Also when `out` already holds a model.
        FileNotFoundError / CheckpointError: a model cannot be read.
    """
    if len(models) < 2:
        raise ValueError("average: give at least two models")
    out = Path(out)
    if (out / "model.safetensors").exists():
        raise ValueError(f"average: {out} already holds a model; choose a new folder")
    ws = _check_weights(weights, len(models))
    paths = [resolve_model_path(m) for m in models]
    named = [(str(m), load_model(p)) for m, p in zip(models, paths, strict=True)]
    config = _check_compatible(named)
    config["out"] = str(out)
    first = named[0][1]
    mixed = average_state_dicts([loaded.model.state_dict() for _, loaded in named], ws)
    first.model.load_state_dict(mixed)
    ingredients = [
        {"model": name, "path": str(p), "weight": w, "weights_sha256": loaded.meta.get("weights_sha256")}
        for (name, loaded), p, w in zip(named, paths, ws, strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        out,
        first.model,
        arch=first.arch,
        num_classes=first.num_classes,
        in_chans=first.in_chans,
        class_names=first.class_names,
        image_size=first.image_size,
        preprocess=first.preprocess,
        normalization=first.normalization,
        config=config,
        data_fingerprint=None,
        metrics=None,
        extra={"averaged_from": ingredients},
    )
