"""Percentile bootstrap confidence intervals for figures computed on a test set.

Resampling is stratified by true class: each resample keeps every class's count, so a per-class
figure such as one-vs-rest AUC stays defined in every resample and the interval reflects the
uncertainty of the scans drawn, not of the class mix (which the test folder fixes).

When the test set holds duplicates of itself (copies, mirror images, adjacent slices of one scan:
1311 Nickparvar test scans form 898 such groups), its scans are not independent draws, and resampling
them one by one gives intervals that are too narrow. Given the groups (`groups`, from the leak audit),
whole groups are resampled instead (the cluster bootstrap), stratified by each group's class.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_calibration_error,
    multiclass_f1_score,
)

from braintumor.metrics.calibration import ECE_BINS

# f(labels (N,) long tensor, probs (N, K) float tensor) -> figure, or None where undefined.
Statistic = Callable[[torch.Tensor, torch.Tensor], "float | None"]

# torchmetrics rather than scikit-learn here: the same figures, but ~10x less overhead per call, which
# matters at 1000 resamples x several figures. Arguments were validated once, before resampling.


def _present(labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=k) > 0


def _accuracy(labels: torch.Tensor, probs: torch.Tensor) -> float:
    return float(multiclass_accuracy(probs, labels, probs.shape[1], average="micro", validate_args=False))


def _macro_f1(labels: torch.Tensor, probs: torch.Tensor) -> float:
    # Same convention as summary_metrics: average over the classes present in the labels.
    f1 = multiclass_f1_score(probs, labels, probs.shape[1], average="none", validate_args=False)
    return float(f1[_present(labels, probs.shape[1])].mean())


def _auc_macro(labels: torch.Tensor, probs: torch.Tensor) -> float | None:
    present = _present(labels, probs.shape[1])
    if present.sum() < 2:
        return None  # one-vs-rest AUC needs positives and negatives
    auc = multiclass_auroc(probs, labels, probs.shape[1], average="none", validate_args=False)
    return float(auc[present].mean())


def _ece(labels: torch.Tensor, probs: torch.Tensor) -> float:
    # The same definition as calibration.expected_calibration_error (15 equal-width bins, top label).
    # Binned ECE is biased upward on small sets, and so are its resamples: the interval says how much the
    # figure moves with the scans drawn, not where an unbiased estimate would lie.
    ece = multiclass_calibration_error(probs, labels, probs.shape[1], n_bins=ECE_BINS, norm="l1", validate_args=False)
    return float(ece)


# The headline figures that get intervals in metrics.json, keyed as there.
HEADLINE_STATISTICS: dict[str, Statistic] = {
    "accuracy": _accuracy,
    "macro_f1": _macro_f1,
    "auc_roc_macro": _auc_macro,
    "ece": _ece,
}


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn; stored beside them in metrics.json."""

    n_resamples: int = 1000  # resamples; 1000 gives stable 95 % percentiles (about +-0.5 pp at n = 1000)
    confidence: float = 0.95  # central coverage of the interval, in (0, 1)
    seed: int = 0  # NumPy Generator seed; same seed and data -> same interval
    stratified: bool = True  # resample within each true class (keeps class counts)

    def to_dict(self, grouped: bool = False) -> dict:
        resampling = "stratified by true class" if self.stratified else "plain (whole test set)"
        if grouped:
            resampling = f"duplicate groups from the leak audit, {resampling}"
        return {
            "method": "percentile bootstrap",
            "resampling": resampling,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "seed": self.seed,
        }


def resample_indices(labels: np.ndarray, rng: np.random.Generator, stratified: bool) -> np.ndarray:
    """One bootstrap resample of row indices (same size as `labels`)."""
    n = len(labels)
    if not stratified:
        return rng.integers(0, n, size=n)
    parts = [rng.choice(np.flatnonzero(labels == c), size=int((labels == c).sum())) for c in np.unique(labels)]
    return np.concatenate(parts)


class GroupResampler:
    """Cluster bootstrap: resample whole groups of rows, optionally within each group's class.

    A group's class is its most common true label (a group whose copies disagree on the label is rare
    and is drawn whole, with its mixed labels). A resample draws as many groups of each class as there
    are, so its size varies a little around N.
    """

    def __init__(self, labels: np.ndarray, groups: np.ndarray, stratified: bool) -> None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        self.members = np.split(order, bounds)  # row indices of each group
        group_label = np.array([np.bincount(labels[m]).argmax() for m in self.members])
        strata = np.unique(group_label) if stratified else [None]
        self.strata = [
            np.flatnonzero(group_label == c) if c is not None else np.arange(len(self.members)) for c in strata
        ]

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        drawn = [rng.choice(stratum, size=len(stratum)) for stratum in self.strata]
        return np.concatenate([self.members[g] for g in np.concatenate(drawn)])


def bootstrap_ci(
    labels: np.ndarray,
    probs: np.ndarray,
    statistics: Mapping[str, Statistic] | None = None,
    settings: BootstrapSettings | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, list[float] | None]:
    """Percentile intervals of each statistic over bootstrap resamples of the scans (or of their groups).

    Args:
        labels: true class indices, shape (N,).
        probs: predicted probabilities, shape (N, K).
        statistics: name -> f(labels tensor, probs tensor) -> float or None;
            default: accuracy, macro F1, macro AUC, ECE.
        settings: resamples, confidence, seed, stratification.
        groups: one id per scan (N,); scans sharing an id are copies or near-copies of one another and
            are resampled together. None: every scan is its own group.

    Returns:
        name -> [low, high] rounded to 6 decimals, or None where the statistic was undefined in every resample.

    Raises:
        ValueError: empty input or a bad setting.
    """
    statistics = HEADLINE_STATISTICS if statistics is None else statistics
    s = settings or BootstrapSettings()
    labels, probs = np.asarray(labels, dtype=np.int64), np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        raise ValueError("bootstrap: no scans to resample")
    if s.n_resamples < 1 or not 0 < s.confidence < 1:
        raise ValueError(f"bootstrap: need n_resamples >= 1 and 0 < confidence < 1, got {s}")
    if probs.ndim != 2 or len(probs) != len(labels) or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"bootstrap: labels {labels.shape} do not index the columns of probs {probs.shape}")
    if groups is not None and len(groups) != len(labels):
        raise ValueError(f"bootstrap: {len(groups)} group ids for {len(labels)} scans")
    draw = GroupResampler(labels, groups, s.stratified) if groups is not None else None
    rng = np.random.default_rng(s.seed)
    y, p = torch.as_tensor(labels), torch.as_tensor(probs)
    values: dict[str, list[float]] = {name: [] for name in statistics}
    with warnings.catch_warnings():
        # Classes the test folder lacks have no positives; their AUC is computed, then left out of the mean.
        warnings.filterwarnings("ignore", message="No positive samples in targets")
        for _ in range(s.n_resamples):
            idx = torch.as_tensor(draw(rng) if draw else resample_indices(labels, rng, s.stratified))
            for name, fn in statistics.items():
                v = fn(y[idx], p.index_select(0, idx))  # index_select: far faster than p[idx] on CPU
                if v is not None and np.isfinite(v):
                    values[name].append(v)
    tail = (1 - s.confidence) / 2 * 100
    # torchmetrics works in float32 (about 7 significant digits): 6 decimals is the precision there is.
    return {
        name: [round(float(x), 6) for x in np.percentile(v, [tail, 100 - tail])] if v else None
        for name, v in values.items()
    }
