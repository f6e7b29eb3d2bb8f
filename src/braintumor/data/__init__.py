"""Datasets: discovery, splits, readability checks, decode cache, transforms and the leakage audit."""

from braintumor.data.discovery import DatasetIndex, Sample, discover, parse_merge_map
from braintumor.data.readcheck import check_readable
from braintumor.data.splits import train_val_split

__all__ = ["DatasetIndex", "Sample", "check_readable", "discover", "parse_merge_map", "train_val_split"]
