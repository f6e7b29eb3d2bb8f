"""What one evaluation produced: per-scan outputs, the figures of each scored subset, example scans."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.evaluation.bootstrap import BootstrapSettings, bootstrap_ci
from braintumor.metrics.classification import full_metrics
from braintumor.models.head import softmax

# The figures shown side by side (whole test set vs leak-free subset), in the order people read them:
# metrics.json key -> label.
HEADLINE = {
    "n": "scans (n)",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
    "auc_roc_macro": "macro AUC (one vs rest)",
    "ece": "ECE (calibrated)",
    "ece_uncalibrated": "ECE (uncalibrated, T = 1)",
    "brier": "Brier score",
    "nll": "NLL",
}


def score(
    labels: np.ndarray,
    logits: np.ndarray,
    class_names: list[str],
    temperature: float,
    bootstrap: BootstrapSettings | None = None,
    groups: np.ndarray | None = None,
) -> dict:
    """All figures of one set of scans: `full_metrics` on calibrated probabilities, T = 1 ECE, bootstrap CIs.

    Args:
        labels: true class indices (N,), N >= 1.
        logits: raw model outputs (N, K).
        class_names: the model's K classes.
        temperature: the checkpoint's calibration temperature.
        bootstrap: interval settings; None skips the intervals (`ci` is then absent).
        groups: duplicate-group id per scan (from the leak audit); the intervals then resample whole groups.
    """
    probs, raw = softmax(logits, temperature), softmax(logits)
    out = full_metrics(labels, probs, class_names, probs_uncalibrated=raw)
    out["temperature"] = float(temperature)
    if bootstrap is not None:
        ci = bootstrap_ci(labels, probs, settings=bootstrap, groups=groups)
        out["ci"] = {**ci, **bootstrap.to_dict(grouped=groups is not None)}
        if groups is not None:
            out["ci"]["n_groups"] = len(np.unique(groups))
    return out


@dataclass
class Example:
    """One scan shown in the report (a confident mistake).

    Attributes:
        file: path relative to the data folder.
        true / predicted: class names.
        confidence: calibrated probability of the predicted class.
        image: the uint8 (S, S) image the model saw.
        overlay: RGB uint8 LayerCAM overlay on the original scan, when `braintumor.explain` could make one.
        leaks: True when the leak audit found a copy of it in the training data (None: not audited).
    """

    file: str
    true: str
    predicted: str
    confidence: float
    image: np.ndarray
    overlay: np.ndarray | None = None
    leaks: bool | None = None


@dataclass
class EvaluationResult:
    """Everything `braintumor evaluate` reports.

    Attributes:
        model: {"path", "arch", "image_size", "in_chans"} of the checkpoint.
        data: the data folder; `split` the split scored ("test" or "all").
        class_names: the model's classes (probability columns, confusion-matrix order).
        files: scored files, relative to `data`; `labels` and `logits` are row-aligned with them.
        temperature: calibration temperature from the checkpoint.
        leaks: per file True (has a copy or near-copy in the training data), False (clean), None (not
            audited); None altogether when no leak audit was asked for.
        unreadable: (path, reason) of skipped files.
        metrics: figures of the whole set (`score`); `leak_free` those of the clean subset.
        audit: leak-audit summary (training folder, counts, audit folder).
        examples: confident mistakes for the report.
        notes: things the reader should know (e.g. why Grad-CAM overlays are missing).
    """

    model: dict
    data: Path
    split: str
    class_names: list[str]
    files: list[str]
    labels: np.ndarray
    logits: np.ndarray
    temperature: float
    metrics: dict
    leaks: list[bool | None] | None = None
    leak_free: dict | None = None
    audit: dict | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def probs(self) -> np.ndarray:
        """Calibrated probabilities (N, K)."""
        return softmax(self.logits, self.temperature)

    @property
    def probs_uncalibrated(self) -> np.ndarray:
        """Probabilities at temperature 1 (N, K)."""
        return softmax(self.logits)

    @property
    def clean_mask(self) -> np.ndarray | None:
        """Boolean mask of the leak-free scans, or None without a leak audit."""
        if self.leaks is None:
            return None
        return np.array([flag is False for flag in self.leaks], dtype=bool)
