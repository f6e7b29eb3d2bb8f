"""One frozen config object for a training run (nanoGPT's GPTConfig habit).

CLI flags and an optional YAML file build a `TrainConfig`; the trainer receives only that
object, and the run folder stores it as `config.yaml`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from braintumor.data.preprocess import check_image_size
from braintumor.models import model_info


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = ""  # dataset root (class folders, optionally in split folders); its train split is used
    out: str = "runs/run"  # run folder: config, checkpoints, logs, metrics
    test_dir: str | None = None  # optional test folder, evaluated once after training (never used to choose)
    exclude: str | None = None  # file of paths (relative to `data`) to drop, e.g. the audit's test leaks
    merge: str | None = None  # class-merge map, e.g. "tumor=glioma,meningioma,pituitary"
    class_map: str | None = None  # folder=class renames ("glioma_tumor=glioma,...") or a file of them; before merge
    groups_csv: str | None = None  # path,group CSV (the audit's groups.csv): duplicates stay on one side
    val_fraction: float = 0.15  # share of training images carved out for validation, 0.05-0.3
    cache_dir: str | None = None  # decode cache folder; None = ~/.cache/braintumor/decoded
    weak_data: str | None = None  # extra coarsely labelled scans (FOLDER/*.jpg per folder), training split only
    weak_labels: str | None = None  # what weak_data's folders may be, e.g. "yes=glioma,meningioma,pituitary"
    weak_repeat: int = 1  # times each weak scan is seen per epoch, 1-20
    # model
    arch: str = "efficientnet_lite0"  # a name from `braintumor.models.list_models()`
    pretrained: bool = True  # start from ImageNet weights where the architecture has them
    init_from: str | None = None  # start from a trained model's weights (run folder, checkpoint or 'default')
    in_chans: int = 3  # 1 or 3 input channels (grayscale scans are replicated for 3)
    image_size: int | None = None  # input side in pixels, 128-384; None: the architecture's default_image_size
    crop_to_head: bool = True  # crop each scan to the head's bounding box before resizing
    per_scan_norm: bool = False  # rescale each scan by its own 1st-99th intensity percentiles
    drop_rate: float = 0.2  # dropout before the classifier head, 0-0.5
    channels_last: bool = True  # NHWC memory layout: faster convolutions on CPU (measured) and GPU
    tta: str = "none"  # test-time augmentation saved with the model: none, or hflip (average with the mirror image)
    # optimisation
    epochs: int = 20  # maximum epochs; early stopping usually ends sooner
    batch_size: int = 32  # images per step per device, 8-256
    lr: float = 1e-3  # Adam learning rate, 1e-4 to 3e-3 from ImageNet weights; about 5e-5 to go on from a trained model
    weight_decay: float = 1e-4  # Adam L2 weight decay, 0-1e-3
    label_smoothing: float = 0.0  # cross-entropy label smoothing, 0-0.2
    class_weights: bool = True  # weight the loss by inverse class frequency
    freeze_epochs: int = 0  # two-stage fine-tuning: train only the head for this many epochs, 0-5
    finetune_lr_factor: float = 0.1  # lr multiplier for the backbone once unfrozen, 0.01-1
    lr_patience: int = 2  # epochs without val macro-F1 gain before the lr is reduced
    lr_factor: float = 0.3  # lr reduction factor, 0.1-0.5
    early_stop_patience: int = 5  # epochs without val macro-F1 gain before stopping
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields overriding defaults
    # run
    seed: int = 42
    num_workers: int = -1  # DataLoader workers per device; -1 = fit to the machine's cores
    accelerator: str = "auto"  # cpu, gpu, auto (passed to Lightning)
    devices: str = "auto"  # device count or list, e.g. 2 or "0,1" (passed to Lightning)
    num_nodes: int = 1  # machines in a multi-node run
    strategy: str = "auto"  # Lightning strategy, e.g. ddp
    precision: str = "auto"  # "auto" = 16-mixed on GPU, 32 on CPU
    limit_train_batches: float = 1.0  # fraction (<=1) or count (>1) of batches per epoch, for smoke runs
    resume: bool = False  # continue from OUT/checkpoints/last.ckpt

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_sources(cls, yaml_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Defaults, then the YAML file, then explicit overrides (CLI flags that were given)."""
        values: dict[str, Any] = {}
        if yaml_path:
            loaded = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{yaml_path}: expected a mapping of config fields")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - cls.field_names())
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known: {sorted(cls.field_names())}")
        cfg = cls(**{k: _coerce(k, v, _TYPES[k]) for k, v in values.items()})
        if cfg.image_size is None:  # the registry's size is the training default
            cfg = dataclasses.replace(cfg, image_size=model_info(cfg.arch).default_image_size)
        cfg.validate()
        return cfg

    def differences(self, other: TrainConfig, names: Iterable[str]) -> list[str]:
        """'name: a -> b' for each of `names` whose value differs between self and `other`."""
        return [
            f"{n}: {getattr(self, n)!r} -> {getattr(other, n)!r}"
            for n in names
            if getattr(self, n) != getattr(other, n)
        ]

    def validate(self) -> None:
        if not self.data:
            raise ValueError("config: 'data' (dataset folder) is required")
        if self.in_chans not in (1, 3):
            raise ValueError(f"config: in_chans must be 1 or 3, not {self.in_chans}")
        if self.tta not in ("none", "hflip"):
            raise ValueError(f"config: tta must be 'none' or 'hflip', not {self.tta!r}")
        if not 0.0 < self.val_fraction < 0.9:
            raise ValueError(f"config: val_fraction must be in (0, 0.9), not {self.val_fraction}")
        if (self.weak_data is None) != (self.weak_labels is None):
            raise ValueError("config: weak_data and weak_labels go together (the folder and what its folders may be)")
        if not 1 <= self.weak_repeat <= 20:
            raise ValueError(f"config: weak_repeat must be 1-20, not {self.weak_repeat}")
        check_image_size(self.image_size, "config: image_size")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(name: str, value: Any, kind: str) -> Any:
    """A YAML value as its field's type: YAML reads `3e-4` (no decimal point) as a string, and a string lr
    would only fail deep inside the optimiser, after the run folder was written. Numbers pass unchanged."""
    base = kind.replace(" | None", "")
    if value is None or base not in ("int", "float", "bool"):
        return value
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"config: {name} must be true or false, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    want = "an integer" if base == "int" else "a number"
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        number = None
    if number is None or (base == "int" and not number.is_integer()):
        raise ValueError(f"config: {name} must be {want}, not {value!r}")
    return int(number) if base == "int" else number
