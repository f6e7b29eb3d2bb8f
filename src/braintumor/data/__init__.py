"""Datasets: discovery, splits, readability checks, decode cache, transforms and the leakage audit.

Names that need torch (`ScanDataset`, the transforms) load on first use, so `braintumor data info`
and the readability check start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from braintumor.data.cache import DecodeCache, UncachedDecoder
from braintumor.data.discovery import (
    DatasetIndex,
    Sample,
    class_mapping,
    discover,
    parse_class_map,
    parse_label_sets,
    parse_merge_map,
)
from braintumor.data.preprocess import Preprocess, crop_to_head, load_preprocessed, pad_to_square, resize
from braintumor.data.readcheck import check_readable
from braintumor.data.splits import load_groups_csv, train_val_split

_LAZY = {
    "ScanDataset": "braintumor.data.dataset",
    "AugmentConfig": "braintumor.data.transforms",
    "build_transforms": "braintumor.data.transforms",
    "save_augment_grid": "braintumor.data.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'braintumor.data' has no attribute '{name}'")


__all__ = [
    "AugmentConfig",
    "DatasetIndex",
    "DecodeCache",
    "Preprocess",
    "Sample",
    "ScanDataset",
    "UncachedDecoder",
    "build_transforms",
    "check_readable",
    "class_mapping",
    "crop_to_head",
    "discover",
    "load_groups_csv",
    "load_preprocessed",
    "pad_to_square",
    "parse_class_map",
    "parse_label_sets",
    "parse_merge_map",
    "resize",
    "save_augment_grid",
    "train_val_split",
]
