"""LightningDataModule over the data layer: discovery, exclusions, split, decode cache, transforms."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from braintumor import PATH_ERRORS
from braintumor.data import Sample, check_readable, class_mapping, discover, parse_label_sets, train_val_split
from braintumor.data.cache import DecodeCache
from braintumor.data.dataset import ScanDataset
from braintumor.data.preprocess import Preprocess
from braintumor.data.splits import load_groups_csv
from braintumor.data.transforms import AugmentConfig, build_transforms
from braintumor.models import model_info
from braintumor.training.config import TrainConfig

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path.home() / ".cache" / "braintumor" / "decoded"


@dataclass
class PreparedData:
    """The samples a run trains and validates on, and what was left out and why."""

    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    excluded: int
    unreadable: list[tuple[Path, str]]
    weak: list[Sample] = field(default_factory=list)  # coarsely labelled scans; label = their folder name
    label_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folder -> classes its scans may be


def read_list(path: str | Path) -> set[str]:
    """Paths from a list file (one per line, relative to the dataset root; blank lines ignored)."""
    lines = Path(path).read_text(encoding="utf-8", errors=PATH_ERRORS).splitlines()
    return {line.rstrip("\r") for line in lines if line.strip()}  # a path may begin or end with a space


def worker_count(requested: int) -> int:
    """DataLoader workers: as asked, or for -1 about half the cores (the rest run the model), at most 4."""
    if requested >= 0:
        return requested
    return min(4, max(1, (os.cpu_count() or 2) // 2))


def normalization(cfg: TrainConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The statistics the pretrained weights expect (their first layer was trained on them), else 0.5/0.5."""
    norm = model_info(cfg.arch).normalization(cfg.in_chans) if cfg.pretrained else None
    if norm is None:
        return (0.5,) * cfg.in_chans, (0.5,) * cfg.in_chans
    return tuple(norm["mean"]), tuple(norm["std"])


def prepare_samples(cfg: TrainConfig, cache: DecodeCache, progress: bool = True) -> PreparedData:
    """Index the training split, drop excluded and unreadable files, carve validation out of the rest."""
    index = discover(cfg.data, merge=class_mapping(cfg.class_map, cfg.merge))
    split = "train" if "train" in index.splits else "all"
    samples = index.samples(split)
    excluded = 0
    if cfg.exclude:
        drop = read_list(cfg.exclude)
        unmatched = drop - {index.relpath(s.path) for s in index.samples()}
        if unmatched:  # a moved dataset or a hand-edited list: leaks it meant to drop would stay in
            example = sorted(unmatched)[0]
            log.warning(
                "%d path(s) in %s name no image of %s (e.g. %r)", len(unmatched), cfg.exclude, index.root, example
            )
        kept = [s for s in samples if index.relpath(s.path) not in drop]
        excluded = len(samples) - len(kept)
        samples = kept
        log.info("excluded %d images listed in %s", excluded, cfg.exclude)
    readable, unreadable = check_readable(samples, cache=cache, progress=progress)
    groups = load_groups_csv(cfg.groups_csv, index.root) if cfg.groups_csv else None
    train, val = train_val_split(readable, val_fraction=cfg.val_fraction, seed=cfg.seed, groups=groups)
    return PreparedData(index.class_names, train, val, excluded, unreadable)


def prepare_weak(
    cfg: TrainConfig, class_names: list[str], cache: DecodeCache, progress: bool = True
) -> tuple[list[Sample], dict[str, tuple[str, ...]], list[tuple[Path, str]]]:
    """The readable scans of `cfg.weak_data`, their label sets, and the unreadable ones.

    Every folder of weak_data must be named in weak_labels and every named class must be one of the
    model's classes; a mistake here would silently teach wrong labels, so both are errors.
    """
    where = f"weak_data {cfg.weak_data}"
    sets = parse_label_sets(cfg.weak_labels or "")
    index = discover(cfg.weak_data or "")
    samples = index.samples()
    found = sorted({s.label for s in samples})
    unnamed = [f for f in found if f not in sets]
    if unnamed:
        raise ValueError(f"{where}: folder(s) {unnamed} are not in weak_labels {cfg.weak_labels!r}")
    missing = [f for f in sets if f not in found]
    if missing:
        raise ValueError(f"{where}: weak_labels names folder(s) {missing} that hold no scans (found {found})")
    for folder, classes in sets.items():
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            raise ValueError(f"weak_labels: '{folder}' lists {unknown}, not among the classes {class_names}")
    readable, unreadable = check_readable(samples, cache=cache, progress=progress)
    log.info("weak labels: %d scans from %s (%d unreadable)", len(readable), cfg.weak_data, len(unreadable))
    return readable, sets, unreadable


class LabelSetTargets(Dataset):
    """A ScanDataset whose class i stands for label set i: yields (tensor, -1 - i), never a class index.

    Negative targets let one batch mix exact labels (>= 0) and label sets; `ClassifierModule` tells them apart.
    """

    def __init__(self, dataset: ScanDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, k = self.dataset[i]
        return x, -1 - k


def inverse_frequency(samples: list[Sample], class_names: list[str]) -> list[float]:
    """Loss weights n / (k * count_c): each class contributes equally to the loss."""
    counts = Counter(s.label for s in samples)
    missing = [c for c in class_names if counts[c] == 0]
    if missing:
        raise ValueError(f"no training images for class(es) {missing} after exclusions and the split")
    return [len(samples) / (len(class_names) * counts[c]) for c in class_names]


class ScanDataModule(L.LightningDataModule):
    """Builds train/val datasets once per process from a `TrainConfig`."""

    def __init__(self, cfg: TrainConfig, progress: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.progress = progress
        self.cache = DecodeCache(
            Path(cfg.cache_dir) if cfg.cache_dir else DEFAULT_CACHE,
            Preprocess(image_size=cfg.image_size, crop=cfg.crop_to_head),
        )
        self.prepared: PreparedData | None = None

    def prepare(self) -> PreparedData:
        if self.prepared is None:
            data = prepare_samples(self.cfg, self.cache, progress=self.progress)
            if self.cfg.weak_data:
                data.weak, data.label_sets, bad = prepare_weak(self.cfg, data.class_names, self.cache, self.progress)
                data.unreadable.extend(bad)
            self.prepared = data
        return self.prepared

    def setup(self, stage: str | None = None) -> None:
        data = self.prepare()
        mean, std = normalization(self.cfg)
        aug = AugmentConfig.from_dict(self.cfg.augment)
        common = {"class_names": data.class_names, "cache": self.cache}
        norm = {"in_chans": self.cfg.in_chans, "mean": mean, "std": std, "per_scan_norm": self.cfg.per_scan_norm}
        train_tf = build_transforms(aug, train=True, **norm)
        self.train_set: Dataset = ScanDataset(data.train, transform=train_tf, **common)
        if data.weak:
            folders = list(data.label_sets)  # label set i <-> target -1 - i, the order ClassifierModule gets
            weak = LabelSetTargets(ScanDataset(data.weak, folders, self.cache, train_tf))
            self.train_set = ConcatDataset([self.train_set] + [weak] * self.cfg.weak_repeat)
        self.val_set = ScanDataset(data.val, transform=build_transforms(aug, train=False, **norm), **common)

    def _loader(self, dataset: ScanDataset, shuffle: bool) -> DataLoader:
        workers = worker_count(self.cfg.num_workers)
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            # Training workers start afresh each epoch and take their seeds from the main process's torch
            # RNG, which `RandomState` restores on --resume: persistent ones would keep the seeds of the
            # epoch they started in, so a resumed run would augment differently from an uninterrupted one.
            persistent_workers=workers > 0 and not shuffle,
            drop_last=shuffle and len(dataset) > self.cfg.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
