"""A torch Dataset over labelled scan files, reading through a decode cache."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from braintumor.data.discovery import Sample


class ArraySource(Protocol):
    """Anything that maps a scan path to a preprocessed uint8 (S, S) array: `DecodeCache`, `UncachedDecoder`."""

    def get(self, path: str | Path) -> np.ndarray: ...


class ScanDataset(Dataset):
    """(tensor, class index) pairs for a list of samples.

    Args:
        samples: labelled files, e.g. the readable ones from `check_readable`.
        class_names: the model's classes; index i is class_names[i]. Samples must use only these labels.
        cache: gives the preprocessed array of a path (`DecodeCache` for training, `UncachedDecoder` to skip disk).
        transform: maps the uint8 (S, S) array to a float tensor, e.g. `build_transforms(...)`.

    Raises:
        ValueError: a sample's label is not in class_names, or class_names has duplicates.

    The dataset holds only paths, labels, the cache (a folder name) and the transform, so it
    pickles cheaply to DataLoader worker processes. Unreadable files raise
    `braintumor.io.ScanReadError` when loaded; run `check_readable` first to drop them.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        class_names: Sequence[str],
        cache: ArraySource,
        transform: Callable[[np.ndarray], torch.Tensor],
    ) -> None:
        self.class_names = list(class_names)
        dupes = sorted(c for c, k in Counter(self.class_names).items() if k > 1)
        if dupes:
            raise ValueError(f"class_names lists {dupes} more than once")
        index = {c: i for i, c in enumerate(self.class_names)}
        unknown = Counter(s.label for s in samples if s.label not in index)
        if unknown:
            example = next(s.path for s in samples if s.label in unknown)
            raise ValueError(
                f"labels {sorted(unknown)} are not among the classes {self.class_names} "
                f"({sum(unknown.values())} files, e.g. {example})"
            )
        self.samples = list(samples)
        self.targets = [index[s.label] for s in self.samples]
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.cache.get(self.samples[i].path)), self.targets[i]

    def class_counts(self) -> list[int]:
        """Number of samples per class, in class_names order (for class weights and samplers)."""
        counts = Counter(self.targets)
        return [counts[i] for i in range(len(self.class_names))]
