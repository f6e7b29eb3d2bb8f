"""Datasets: discovery, splits, readability checks, decode cache, transforms and the leakage audit."""

from braintumor.data.discovery import DatasetIndex, Sample, discover, parse_merge_map

__all__ = ["DatasetIndex", "Sample", "discover", "parse_merge_map"]
