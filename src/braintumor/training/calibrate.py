"""Refit a trained model's calibration on its own validation split, choosing test-time augmentation there.

`braintumor train` fits the temperature once, on single-view logits. This step rebuilds the run's
validation split exactly (same data, exclusions, duplicate groups and seed, read from the sidecar's
config), scores each candidate test-time augmentation on it, keeps the one with the best macro-F1
(ties go to the cheaper one), fits the temperature on that mode's logits and rewrites the sidecar.
Only validation data is read: test data never chooses anything.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data import DecodeCache, check_readable
from braintumor.data.dataset import ScanDataset
from braintumor.data.pipeline import ScanPipeline
from braintumor.metrics.classification import calibrated_summary
from braintumor.models import LoadedModel, load_model, update_metadata
from braintumor.models.default import resolve_model_path
from braintumor.models.tta import TTA_MODES
from braintumor.training.config import TrainConfig
from braintumor.training.datamodule import PreparedData, prepare_samples
from braintumor.training.logits import predict_logits

log = logging.getLogger(__name__)


@dataclass
class CalibrationResult:
    """What `calibrate` measured per mode on validation, and what it wrote."""

    path: Path
    chosen: str
    per_mode: dict[str, dict[str, Any]]
    written: bool

    def summary(self) -> str:
        lines = [f"validation split of {self.path}: n = {next(iter(self.per_mode.values()))['n']}"]
        lines.append(f"{'tta':<6} {'acc':>7} {'macro-F1':>9} {'T':>6} {'ECE raw':>8} {'ECE cal':>8}")
        for mode, m in self.per_mode.items():
            mark = "  <- chosen" if mode == self.chosen else ""
            lines.append(
                f"{mode:<6} {m['accuracy']:>7.4f} {m['macro_f1']:>9.4f} {m['temperature']:>6.3f} "
                f"{m['ece_before_calibration']:>8.4f} {m['ece']:>8.4f}{mark}"
            )
        lines.append("sidecar updated" if self.written else "dry run: sidecar not changed")
        return "\n".join(lines)


# Config fields that name files or folders the split is rebuilt from (`relocate` applies to these).
PATH_FIELDS = ("data", "exclude", "groups_csv", "weak_data", "cache_dir")


def parse_relocations(specs: Sequence[str] | None) -> dict[str, str]:
    """`OLD=NEW` strings (the --relocate flag) as {old prefix: new prefix}.

    Raises:
        ValueError: a spec without '=' or with an empty side.
    """
    moves = {}
    for spec in specs or ():
        old, sep, new = spec.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"--relocate {spec!r}: expected OLD=NEW, e.g. /work/runs=/home/me/runs")
        moves[old.rstrip("/")] = new.rstrip("/") or "/"
    return moves


def relocated(path: str, moves: Mapping[str, str]) -> str:
    """`path` with the longest matching OLD prefix of `moves` replaced by its NEW one."""
    for old in sorted(moves, key=len, reverse=True):
        if path == old or path.startswith(old + "/"):
            return moves[old] + path[len(old) :]
    return path


@contextmanager
def rebuilt_split(
    loaded: LoadedModel,
    path: Path,
    *,
    data: str | None = None,
    relocate: Mapping[str, str] | None = None,
    progress: bool = True,
) -> Iterator[tuple[PreparedData, DecodeCache]]:
    """The model's own training and validation split, rebuilt from the config recorded in its sidecar.

    Same data, exclusions, duplicate groups, fraction and seed as at training time, so the validation
    scans are exactly the ones training held out. `data` replaces the recorded dataset root (moved data);
    `relocate` ({OLD: NEW} path prefixes) moves every recorded path, for a model trained elsewhere.
    Yields the split and the decode cache it was read through: the one training used (its `cache_dir`),
    else a temporary one that lives as long as the `with` block.

    Raises:
        ValueError: the sidecar records no training config (or data), or the rebuilt validation split
            differs in size from the one recorded at training time (data moved or changed).
    """
    cfg = _config_of(loaded.meta, data, relocate or {})
    with tempfile.TemporaryDirectory(prefix="braintumor-split-") as tmp:
        cache = DecodeCache(cfg.cache_dir or tmp, ScanPipeline.for_model(loaded).preprocess)
        prepared = prepare_samples(cfg, cache, progress=progress)
        recorded = ((loaded.meta.get("metrics") or {}).get("validation") or {}).get("n")
        if recorded is not None and int(recorded) != len(prepared.val):
            raise ValueError(
                f"{path}: the validation split rebuilt from {cfg.data} has {len(prepared.val)} scans, "
                f"training recorded {recorded}; the data or the lists it names changed"
            )
        yield prepared, cache


def _config_of(meta: dict, data: str | None, relocate: Mapping[str, str]) -> TrainConfig:
    config = dict(meta.get("config") or {})
    if not config.get("data") and not data:
        raise ValueError("calibrate: the checkpoint records no training data; pass --data")
    for name in PATH_FIELDS:
        if config.get(name):
            config[name] = relocated(str(config[name]), relocate)
    if data:
        config["data"] = str(data)
    for name in PATH_FIELDS[:-1]:  # the cache folder may be missing: it is made again
        if config.get(name) and not Path(config[name]).exists():
            raise FileNotFoundError(
                f"the model's validation split is rebuilt from its training {name} {config[name]}, which is not "
                "here; if the files moved, pass --relocate OLD=NEW (the part of the recorded paths to replace)"
            )
    known = TrainConfig.field_names()
    return TrainConfig(**{k: v for k, v in config.items() if k in known})


def calibrate(
    model: str | Path,
    *,
    modes: tuple[str, ...] = TTA_MODES,
    data: str | None = None,
    relocate: Mapping[str, str] | None = None,
    write: bool = True,
    batch_size: int = 32,
    progress: bool = True,
) -> CalibrationResult:
    """Score `modes` on the model's validation split, fit the temperature for the best, update the sidecar.

    Raises:
        ValueError: an unknown mode, a checkpoint without its training config, or a validation split that
            differs in size from the one recorded at training time (data moved or changed).
    """
    unknown = [m for m in modes if m not in TTA_MODES]
    if unknown or not modes:
        raise ValueError(f"calibrate: unknown test-time augmentation {unknown}; known: {', '.join(TTA_MODES)}")
    path = resolve_model_path(model)
    loaded = load_model(path)
    pipeline = ScanPipeline.for_model(loaded)
    with rebuilt_split(loaded, path, data=data, relocate=relocate, progress=progress) as (prepared, cache):
        good, bad = check_readable(prepared.val, cache=cache, progress=False)
        if bad:
            log.warning("%d validation scans unreadable now, left out (e.g. %s)", len(bad), bad[0][1])
        dataset = ScanDataset(good, loaded.class_names, cache, pipeline.transform)
        labels = np.asarray(dataset.targets, dtype=np.int64)
        per_mode: dict[str, dict[str, Any]] = {}
        for mode in modes:
            logits = predict_logits(loaded, dataset, batch_size=batch_size, progress=progress, tta=mode)
            per_mode[mode] = {**calibrated_summary(logits, labels, loaded.class_names), "tta": mode}
    # Best validation macro-F1; modes are listed cheapest first, so a tie keeps the cheaper one.
    chosen = max(modes, key=lambda m: (round(per_mode[m]["macro_f1"], 6), -modes.index(m)))
    if write:
        metrics_all = dict(loaded.meta.get("metrics") or {})
        metrics_all["validation"] = per_mode[chosen]
        metrics_all["calibration_candidates"] = per_mode
        update_metadata(path, temperature=per_mode[chosen]["temperature"], tta=chosen, metrics=metrics_all)
    return CalibrationResult(path, chosen, per_mode, write)
