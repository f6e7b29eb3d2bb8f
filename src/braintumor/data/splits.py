"""Seeded, stratified train/validation splits, optionally keeping groups of related images together.

Public MRI sets hold exact copies, re-encoded copies and adjacent slices of one scan. A random
split puts one copy in training and its twin in validation, and the validation score then
measures memory, not generalisation. `braintumor data audit DATA --out DIR` writes
``DIR/groups.csv`` (header ``path,group``; path relative to DATA; one group id shared by all
images linked by any duplicate or near-duplicate relation). Pass it through `load_groups_csv`
as `groups=` and every such group lands entirely in train or entirely in validation.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from braintumor import PATH_ERRORS
from braintumor.data.discovery import Sample

log = logging.getLogger(__name__)


def _check_class_sizes(samples: Sequence[Sample]) -> None:
    small = {c: n for c, n in Counter(s.label for s in samples).items() if n < 2}
    if small:
        names = ", ".join(f"'{c}' ({n} image)" for c, n in sorted(small.items()))
        raise ValueError(
            f"cannot split train/validation: class {names} has fewer than 2 images; "
            "add images, merge the class with --merge, or give a separate validation folder"
        )


def _check_both_parts(samples: Sequence[Sample], val_idx: np.ndarray, val_fraction: float, grouped: bool) -> None:
    in_val = Counter(samples[i].label for i in val_idx)
    total = Counter(s.label for s in samples)
    missing = sorted(c for c in total if in_val[c] in (0, total[c]))
    if missing:
        unit = "groups of duplicates" if grouped else "images"
        raise ValueError(
            f"cannot split train/validation with val_fraction={val_fraction}: class(es) {missing} have too few "
            f"{unit} to appear in both parts (counts: {', '.join(f'{c}={total[c]}' for c in missing)}); "
            "add images, raise val_fraction, or give a separate validation folder"
        )


def _group_ids(samples: Sequence[Sample], groups: Mapping[Path, str]) -> list[str]:
    ids, missing = [], 0
    for s in samples:
        g = groups.get(s.path)
        if g is None:
            missing += 1
            g = f"__single__:{s.path}"  # an image no group file mentions is related to nothing
        ids.append(str(g))
    if groups and missing == len(samples) > 0:
        raise ValueError(
            f"the groups map names none of the {len(samples)} images (e.g. {samples[0].path}); "
            "was it written by an audit of another dataset folder?"
        )
    if missing:
        log.warning("%d of %d images have no entry in the groups map; each is its own group", missing, len(samples))
    return ids


def train_val_split(
    samples: Sequence[Sample],
    val_fraction: float = 0.15,
    seed: int = 0,
    groups: Mapping[Path, str] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into train and validation, stratified by label, reproducible for a seed.

    Args:
        samples: labelled files (e.g. `index.samples("train")`).
        val_fraction: share of images for validation, in (0, 1).
        seed: random seed; the same seed and samples give the same split.
        groups: optional {absolute path: group id}, e.g. from `load_groups_csv`. With it, no group
            is in both parts (sklearn `StratifiedGroupKFold` with round(1/val_fraction) folds; its first
            fold is validation, so the share is 1/round(1/val_fraction), e.g. 1/7 = 14.3% for 0.15,
            and only approximately stratified when groups are large). Images missing from the map
            count as their own group (logged).

    Returns:
        (train, val), each in the input order.

    Raises:
        ValueError: val_fraction out of range, or a class too small to appear in both parts.
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split  # slow import, only needed here

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    samples = list(samples)
    _check_class_sizes(samples)
    labels = [s.label for s in samples]
    index = np.arange(len(samples))
    if groups is None:
        try:
            _, val_idx = train_test_split(index, test_size=val_fraction, stratify=labels, random_state=seed)
        except ValueError as exc:  # sklearn: validation part smaller than the number of classes
            raise ValueError(f"cannot split {len(samples)} images with val_fraction={val_fraction}: {exc}") from None
    else:
        if val_fraction > 0.5:  # validation is one fold of round(1/val_fraction): never more than half
            raise ValueError(f"with duplicate groups, val_fraction can be at most 0.5, got {val_fraction}")
        n_splits = round(1 / val_fraction)
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        try:
            with warnings.catch_warnings():  # small classes are checked below, with a clearer message
                warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
                _, val_idx = next(cv.split(index, labels, groups=_group_ids(samples, groups)))
        except ValueError as exc:  # sklearn: fewer groups than folds
            raise ValueError(f"cannot make a group-aware split of {len(samples)} images: {exc}") from None
    _check_both_parts(samples, val_idx, val_fraction, grouped=groups is not None)
    is_val = np.zeros(len(samples), dtype=bool)
    is_val[val_idx] = True
    return [s for i, s in enumerate(samples) if not is_val[i]], [s for i, s in enumerate(samples) if is_val[i]]


def load_groups_csv(csv_path: str | Path, root: str | Path) -> dict[Path, str]:
    """Read a ``path,group`` CSV (as written by `braintumor data audit`) into {absolute path: group id}.

    Args:
        csv_path: the CSV file; header ``path,group``; paths relative to `root`, forward slashes.
        root: the dataset folder the paths are relative to (the DATA the audit ran on).

    Raises:
        FileNotFoundError: no such file. ValueError: wrong header, malformed row, or one path in two groups.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: groups file not found (write it with 'braintumor data audit')")
    root = Path(root).expanduser().resolve()
    groups: dict[Path, str] = {}
    with csv_path.open(newline="", encoding="utf-8-sig", errors=PATH_ERRORS) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["path", "group"]:
            raise ValueError(f"{csv_path}: expected a header 'path,group', found {header}")
        for row in reader:
            if not row:
                continue
            if len(row) != 2 or not row[0].strip():
                raise ValueError(f"{csv_path}, line {reader.line_num}: expected 'path,group', found {row}")
            # Normalised, not resolved: a dataset of symbolic links (`data combine`) is indexed by the
            # links' own paths, which resolving would replace with their targets.
            path = Path(os.path.normpath(root / row[0]))
            if groups.get(path, row[1]) != row[1]:
                raise ValueError(f"{csv_path}, line {reader.line_num}: '{row[0]}' is in two groups")
            groups[path] = row[1]
    return groups
