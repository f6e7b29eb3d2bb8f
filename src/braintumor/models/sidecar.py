"""The checkpoint sidecar: file naming, JSON conversion, and reading with checks.

A checkpoint is ``<stem>.safetensors`` plus ``<stem>.json``; this module knows the second. The sidecar must be
plain JSON any tool can read (no NaN, no numpy values), and a reader must refuse with a reason rather than
guess: a missing field, an unknown architecture or a format newer than this code all stop here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from braintumor.data.preprocess import check_image_size
from braintumor.models.registry import list_models

FORMAT = "braintumor-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("arch", "num_classes", "in_chans", "class_names", "image_size", "normalization", "temperature")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The (weights, sidecar) pair for a directory, a ``.safetensors`` or ``.json`` file, or a bare stem."""
    p = Path(path)
    if p.is_dir():
        return p / "model.safetensors", p / "model.json"
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def to_json_value(obj: Any) -> Any:
    """`obj` as plain JSON values: numpy/tensor values unwrapped, paths as text, NaN and infinities as null."""
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return to_json_value(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json_value(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # JSON has no NaN; a missing metric reads as null
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise ValueError(f"checkpoint metadata cannot hold a {type(obj).__name__} ({obj!r})")


def read_metadata(path: str | Path) -> dict:
    """The sidecar of a checkpoint (directory, ``.safetensors``, ``.json`` or stem), checked but without weights.

    Raises:
        CheckpointError: missing, unreadable, not a braintumor sidecar, newer format or incomplete.
    """
    weights_path, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        if weights_path.is_file():
            raise CheckpointError(weights_path, f"its sidecar {meta_path.name} is missing; a checkpoint is both files")
        raise CheckpointError(path, f"no checkpoint found (expected {weights_path.name} and {meta_path.name})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(meta_path, f"sidecar is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(meta_path, f'not a braintumor checkpoint sidecar (no "format": "{FORMAT}")')
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            meta_path, f"checkpoint format {version!r} is newer than this braintumor reads ({FORMAT_VERSION}): upgrade"
        )
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(meta_path, f"sidecar lacks {', '.join(missing)}")
    if meta["arch"] not in list_models():
        known = ", ".join(list_models())
        raise CheckpointError(meta_path, f"unknown model architecture '{meta['arch']}' (this version knows: {known})")
    if not isinstance(meta["class_names"], list) or len(meta["class_names"]) != meta["num_classes"]:
        raise CheckpointError(meta_path, f"sidecar lists {meta['class_names']!r} for {meta['num_classes']} classes")
    if len(set(map(str, meta["class_names"]))) != len(meta["class_names"]):  # one probability would vanish
        raise CheckpointError(meta_path, f"sidecar names a class twice: {meta['class_names']!r}")
    t = meta["temperature"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        # T = 0 gives NaN confidences, T < 0 inverts the ranking: never load either
        raise CheckpointError(meta_path, f"temperature must be a positive number, not {t!r}")
    try:
        check_image_size(meta["image_size"])
    except ValueError as exc:
        raise CheckpointError(meta_path, f"sidecar {exc}") from None
    return meta
