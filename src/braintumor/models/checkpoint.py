"""Self-describing checkpoints: weights as safetensors, everything else as a JSON sidecar.

A checkpoint is two files, ``<stem>.safetensors`` and ``<stem>.json`` (``model.*`` inside a directory). The
sidecar holds what rebuilds and uses the model (architecture and its options, class names, image size,
preprocessing, normalization, calibration temperature) and what explains it (training config, data
fingerprint, metrics, library versions). Loading reads JSON and raw tensors only: nothing is unpickled, so
opening a checkpoint from someone else cannot run their code (the reason `torch.load` is not used here).
The sidecar records the weights' SHA-256, so a truncated copy or a weights file from another run is caught
before it is used. Both files are written atomically (temporary file, then rename), weights first, so an
interrupted save never leaves a sidecar that points at half a weights file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torchvision
from safetensors import SafetensorError
from torch import nn

from braintumor import __version__
from braintumor.data.preprocess import Preprocess, check_image_size
from braintumor.models.registry import create_model, list_models
from braintumor.models.sidecar import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_paths,
    read_metadata,
    to_json_value,
)

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "checkpoint_paths",
    "load_model",
    "read_metadata",
    "save_checkpoint",
    "update_metadata",
]


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, with what is needed to feed it and read its output.

    Attributes:
        model: the network, in eval mode, on the requested device.
        arch: registry name of the architecture.
        class_names: output index -> class name.
        image_size: square input side in pixels.
        in_chans: input channels (1 or 3).
        normalization: ``{"mean": [...], "std": [...]}`` per input channel, applied to pixels in [0, 1].
        preprocess: how scans were prepared before normalization (e.g. resize, crop-to-head).
        temperature: divide logits by this before softmax for calibrated probabilities.
        meta: the whole sidecar (config, metrics, data fingerprint, versions, ...).
    """

    model: nn.Module
    arch: str
    class_names: list[str]
    image_size: int
    in_chans: int
    normalization: dict
    preprocess: dict
    temperature: float
    meta: dict

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _check_save_args(
    model: nn.Module, arch: str, num_classes: int, in_chans: int, class_names: list[str], image_size: int
) -> dict:
    """Validate what the sidecar will claim; return the model's creation options."""
    if arch not in list_models():
        raise ValueError(f"unknown model '{arch}'; available models: {', '.join(list_models())}")
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans!r}")
    if len(class_names) != num_classes or len(set(class_names)) != num_classes:
        raise ValueError(f"class_names must be {num_classes} distinct names, got {list(class_names)}")
    check_image_size(image_size)
    made = getattr(model, "creation_args", None) or {}
    claimed = {"arch": arch, "num_classes": num_classes, "in_chans": in_chans}
    wrong = {k: (v, made[k]) for k, v in claimed.items() if k in made and made[k] != v}
    if wrong:
        raise ValueError(f"arguments contradict the model (given, actual): {wrong}")
    return dict(made.get("options", {}))


def _check_normalization(normalization: dict, in_chans: int, temperature: float) -> None:
    mean, std = normalization.get("mean"), normalization.get("std")
    if mean is None or std is None or len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"normalization must give 'mean' and 'std' with {in_chans} value(s), got {normalization}")
    if min(std) <= 0:
        raise ValueError(f"normalization std must be positive, got {std}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _versions() -> dict[str, str]:
    return {
        "braintumor": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    num_classes: int,
    in_chans: int,
    class_names: list[str],
    image_size: int,
    preprocess: dict,
    normalization: dict,
    temperature: float = 1.0,
    tta: str = "none",
    config: dict | None = None,
    data_fingerprint: str | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `model` as ``<stem>.safetensors`` plus the ``<stem>.json`` sidecar that describes it.

    Args:
        path: an existing directory (files ``model.*`` inside it), a ``.safetensors``/``.json`` path, or a stem
            such as ``runs/a/model``.
        model: a model made by `create_model` (its options, e.g. ``width``, are recorded from it).
        arch: its registry name.
        num_classes: number of outputs; must equal ``len(class_names)``.
        in_chans: input channels, 1 or 3.
        class_names: output index -> class name.
        image_size: square input side in pixels.
        preprocess: how scans are prepared before normalization (JSON-serialisable).
        normalization: ``{"mean": [...], "std": [...]}`` with `in_chans` values each, for pixels in [0, 1].
        temperature: calibration temperature (logits are divided by it).
        tta: test-time augmentation the model is used with ("none" or "hflip"; see `braintumor.models.tta`).
        config: the training configuration.
        data_fingerprint: identifies the training data (e.g. a hash of the file list).
        metrics: validation/test figures.
        extra: anything else worth keeping (JSON-serialisable).

    Returns:
        The path of the weights file.

    Raises:
        ValueError: arguments that contradict each other or the model, or metadata that is not JSON-serialisable.
    """
    model = getattr(model, "_orig_mod", model)  # torch.compile wraps the model; save the original's keys
    options = _check_save_args(model, arch, num_classes, in_chans, list(class_names), image_size)
    _check_normalization(normalization, in_chans, temperature)
    meta = to_json_value(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": arch,
            "model_options": options,
            "drop_rate": getattr(model, "creation_args", {}).get("drop_rate"),
            "num_classes": num_classes,
            "in_chans": in_chans,
            "class_names": list(class_names),
            "image_size": image_size,
            "preprocess": preprocess,
            "normalization": normalization,
            "temperature": float(temperature),
            "tta": tta,
            "config": config,
            "data_fingerprint": data_fingerprint,
            "metrics": metrics,
            "extra": extra,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
        }
    )
    weights_path, meta_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # BatchNorm running statistics are buffers: state_dict() includes them.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = safetensors.torch.save(state, metadata={"format": FORMAT})
    _atomic_write(weights_path, lambda p: p.write_bytes(data))
    meta["weights_file"] = weights_path.name
    meta["weights_sha256"] = hashlib.sha256(data).hexdigest()
    text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False)
    _atomic_write(meta_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return weights_path


def update_metadata(path: str | Path, **changes: Any) -> dict:
    """Change fields of a checkpoint's sidecar (e.g. a refitted temperature), weights untouched; atomic.

    Returns the new sidecar. Raises CheckpointError as `read_metadata`, or ValueError for a field that
    identifies the weights (they cannot change without the weights file).
    """
    fixed = {"format", "format_version", "arch", "model_options", "num_classes", "in_chans", "class_names"}
    fixed |= {"weights_file", "weights_sha256"}  # what ties the sidecar to its weights file
    bad = sorted(set(changes) & fixed)
    if bad:
        raise ValueError(f"update_metadata: {bad} describe the weights and cannot change on their own")
    _, meta_path = checkpoint_paths(path)
    meta = read_metadata(path)
    meta.update(to_json_value(changes))
    if "temperature" in changes:
        _check_normalization(meta["normalization"], meta["in_chans"], float(meta["temperature"]))
    text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False)
    _atomic_write(meta_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return meta


def _read_weights(weights_path: Path, meta: dict) -> dict[str, torch.Tensor]:
    if not weights_path.is_file():
        raise CheckpointError(weights_path, "weights file is missing; its .json sidecar alone cannot rebuild the model")
    try:
        data = weights_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(weights_path, f"weights file is not readable ({exc})") from None
    expected = meta.get("weights_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            weights_path, "weights file does not match its sidecar (SHA-256 differs): corrupt, or from another run"
        )
    try:
        return safetensors.torch.load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(weights_path, f"corrupt safetensors file ({exc})") from None


def _check_fit(model: nn.Module, state: dict[str, torch.Tensor], weights_path: Path, arch: str) -> None:
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(v.shape)}, model expects {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckpointError(weights_path, f"weights do not fit a '{arch}' built as the sidecar describes: {shown}")


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a model from a checkpoint, without unpickling anything.

    Args:
        path: the checkpoint directory, its ``.safetensors`` or ``.json`` file, or their common stem.
        map_location: device to put the model on.

    Returns:
        The model in eval mode with its class names, input size, normalization, temperature and metadata.

    Raises:
        CheckpointError: missing sidecar or weights, unknown architecture, corrupt file or shape mismatch.
    """
    weights_path, meta_path = checkpoint_paths(path)
    meta = read_metadata(path)
    state = _read_weights(weights_path, meta)
    try:
        model = create_model(
            meta["arch"],
            num_classes=meta["num_classes"],
            in_chans=meta["in_chans"],
            drop_rate=meta.get("drop_rate") or 0.0,
            **meta.get("model_options", {}),
        )
    except (ValueError, TypeError) as exc:
        raise CheckpointError(meta_path, f"cannot rebuild the model the sidecar describes ({exc})") from None
    _check_fit(model, state, weights_path, meta["arch"])
    model.load_state_dict(state)
    model.to(map_location).eval()
    return LoadedModel(
        model=model,
        arch=meta["arch"],
        class_names=list(meta["class_names"]),
        image_size=int(meta["image_size"]),
        in_chans=int(meta["in_chans"]),
        normalization=dict(meta["normalization"]),
        preprocess=_preprocess_settings(meta, meta_path),
        temperature=float(meta["temperature"]),
        meta=meta,
    )


def _preprocess_settings(meta: dict, meta_path: Path) -> dict[str, Any]:
    """The sidecar's preprocessing settings, without the image size (its one home is `image_size`).

    Raises:
        CheckpointError: unknown settings, or a size that disagrees with `image_size` (older sidecars).
    """
    try:
        return Preprocess.from_dict(meta.get("preprocess") or {}, int(meta["image_size"])).to_dict()
    except ValueError as exc:
        raise CheckpointError(meta_path, f"sidecar preprocessing: {exc}") from None
