"""Evaluation figures: arrays in, a matplotlib Figure out; nothing here writes files (GUIDE habit 5).

Figures are built with `matplotlib.figure.Figure`, not pyplot, so no global state or GUI backend is
involved and many reports can be drawn in one process without leaking figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, roc_curve

from braintumor.metrics.calibration import ECE_BINS, expected_calibration_error

PER_CLASS_FIELDS = ("precision", "recall", "f1", "specificity")


def confusion_matrix_figure(cm: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "") -> Figure:
    """Counts, rows = true class, columns = predicted class; colour = share of the row."""
    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_names)
    fig = Figure(figsize=(1.6 + 0.9 * k, 1.2 + 0.9 * k), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    # Colour by row share so a small class's errors are as visible as a large one's; the text gives counts.
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(cm):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=30, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix")
    return fig


def roc_figure(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """One-vs-rest ROC curve per class present in `labels` (AUC in the legend) and the chance diagonal."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    fig = Figure(figsize=(5.2, 4.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for k, name in enumerate(class_names):
        positive = labels == k
        if not 0 < positive.sum() < len(labels):
            continue  # no ROC without both positives and negatives
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title or "ROC, one class vs rest")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def reliability_figure(
    labels: np.ndarray, curves: Mapping[str, np.ndarray], n_bins: int = ECE_BINS, title: str = ""
) -> Figure:
    """Top-label reliability diagram: accuracy against confidence in equal-width bins, one line per curve.

    Args:
        labels: true class indices (N,).
        curves: legend name -> probabilities (N, K), e.g. {"before (T = 1)": ..., "after (T = 1.4)": ...}.
        n_bins: confidence bins on [0, 1]; by default the bins of the ECE in the legend.
    """
    labels = np.asarray(labels)
    fig = Figure(figsize=(5.2, 5.4), dpi=100, layout="constrained")
    ax, hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    bins = np.linspace(0, 1, n_bins + 1)
    for name, probs in curves.items():
        probs = np.asarray(probs)
        confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
        accuracy, mean_conf = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
        ece = expected_calibration_error(probs, labels)
        (line,) = ax.plot(mean_conf, accuracy, marker="o", lw=1.8, label=f"{name}, ECE {ece:.3f}")
        hist.hist(confidence, bins=bins, histtype="step", lw=1.5, color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title or "Reliability (top label)")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    hist.set_xlabel("confidence (probability of the predicted class)")
    hist.set_ylabel("scans")
    hist.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    return fig


def per_class_figure(
    per_class: Mapping[str, Mapping[str, float | None]], fields: Sequence[str] = PER_CLASS_FIELDS, title: str = ""
) -> Figure:
    """Grouped bars: for each class, its precision, recall (sensitivity), F1 and specificity."""
    names = list(per_class)
    fig = Figure(figsize=(1.2 + 1.05 * len(names), 4.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(fields)
    x = np.arange(len(names))
    for i, field in enumerate(fields):
        values = [per_class[c].get(field) for c in names]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(fields) - 1) / 2) * width, heights, width, label=field)
    ticks = [f"{c}\n(n={per_class[c].get('support', '?')})" for c in names]
    ax.set_xticks(x, ticks)
    ax.set_ylim(0, 1.22)  # head room for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.set_title(title or "Per-class figures")
    ax.legend(ncols=len(fields), fontsize="small", loc="upper center", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig
