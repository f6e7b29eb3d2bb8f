"""Pure metric functions: arrays in, numbers out (MONAI habit). scikit-learn does the arithmetic."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from braintumor.metrics.calibration import expected_calibration_error, fit_temperature
from braintumor.models.head import softmax


def specificity_per_class(cm: np.ndarray) -> np.ndarray:
    """TN / (TN + FP) for each class of a confusion matrix (rows = true, columns = predicted)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tn + fp > 0, tn / (tn + fp), np.nan)


def auc_ovr(labels: np.ndarray, probs: np.ndarray) -> tuple[list[float | None], float | None]:
    """One-vs-rest ROC AUC per class and their macro mean; None for a class absent from `labels`."""
    per_class: list[float | None] = []
    for k in range(probs.shape[1]):
        positive = labels == k
        per_class.append(float(roc_auc_score(positive, probs[:, k])) if 0 < positive.sum() < len(labels) else None)
    valid = [a for a in per_class if a is not None]
    return per_class, (float(np.mean(valid)) if valid else None)


def summary_metrics(labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """The GUIDE's metrics.json core: accuracy, balanced accuracy, macro F1, AUC, ECE, confusion, per class."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(axis=1)
    k = len(class_names)
    ks = list(range(k))
    cm = confusion_matrix(labels, pred, labels=ks)
    prec, rec, f1, support = precision_recall_fscore_support(labels, pred, labels=ks, zero_division=0)
    spec = specificity_per_class(cm)
    auc_per_class, auc_macro = auc_ovr(labels, probs)
    present = [c for c in ks if support[c] > 0]
    predicted = cm.sum(axis=0)
    return {
        "n": len(labels),
        "class_names": list(class_names),
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, pred, labels=ks, average="weighted", zero_division=0)),
        "auc_roc_macro": auc_macro,
        "ece": expected_calibration_error(probs, labels),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                # a class with no scans has no recall or F1 (None: "n/a", not 0); its precision is 0 when it
                # was predicted (every such answer is wrong) and undefined when not
                "precision": float(prec[i]) if support[i] or predicted[i] else None,
                "recall": float(rec[i]) if support[i] else None,
                "f1": float(f1[i]) if support[i] else None,
                "specificity": None if np.isnan(spec[i]) else float(spec[i]),
                "support": int(support[i]),
                "auc_roc": auc_per_class[i],
            }
            for i, name in enumerate(class_names)
        },
    }


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multiclass Brier score: mean over scans of sum_k (p_k - y_k)^2, in [0, 2] for any number of classes.

    The unscaled form is used even for two classes so figures of 2- and 4-class models read alike.
    """
    probs = np.asarray(probs, dtype=np.float64)
    ks = list(range(probs.shape[1]))
    return float(brier_score_loss(np.asarray(labels), probs, labels=ks, scale_by_half=False))


def negative_log_likelihood(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood (cross-entropy, natural log) of the true classes."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(log_loss(np.asarray(labels), probs, labels=list(range(probs.shape[1]))))


def averaged(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, dict[str, float | None]]:
    """Macro and support-weighted precision, recall, F1 and specificity.

    Macro averages run over the classes present in `labels` (a class the test folder lacks has no
    recall to average); predictions of absent classes still count as errors in every figure.
    """
    labels, pred = np.asarray(labels), np.asarray(pred)
    ks = list(range(num_classes))
    cm = confusion_matrix(labels, pred, labels=ks)
    support = cm.sum(axis=1)
    present = [c for c in ks if support[c] > 0]
    spec = specificity_per_class(cm)
    # Specificity is undefined for a class with no negatives (a one-class test folder): leave it out.
    defined = [c for c in present if not np.isnan(spec[c])]
    macro_spec = float(np.mean(spec[defined])) if defined else None
    weighted_spec = float(np.average(spec[defined], weights=support[defined])) if defined else None
    out = {}
    for average, spec_value in (("macro", macro_spec), ("weighted", weighted_spec)):
        p, r, f, _ = precision_recall_fscore_support(labels, pred, labels=present, average=average, zero_division=0)
        out[average] = {"precision": float(p), "recall": float(r), "f1": float(f), "specificity": spec_value}
    return out


def full_metrics(
    labels: np.ndarray, probs: np.ndarray, class_names: list[str], probs_uncalibrated: np.ndarray | None = None
) -> dict:
    """`summary_metrics` plus macro/weighted averages, Brier score, NLL and (when given) the T = 1 ECE.

    Args:
        labels: true class indices into `class_names`, shape (N,).
        probs: calibrated probabilities, shape (N, K); every figure but `ece_uncalibrated` uses them.
        class_names: the model's classes (K names).
        probs_uncalibrated: softmax of the raw logits (temperature 1), for `ece_uncalibrated`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        raise ValueError("no scans to score")
    with warnings.catch_warnings():
        # A test folder holding a subset of the model's classes is valid; its wrong predictions already count.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        out = summary_metrics(labels, probs, class_names)
    out.update(averaged(labels, probs.argmax(axis=1), len(class_names)))
    out["brier"] = brier_score(labels, probs)
    out["nll"] = negative_log_likelihood(labels, probs)
    if probs_uncalibrated is not None:
        out["ece_uncalibrated"] = expected_calibration_error(np.asarray(probs_uncalibrated), labels)
    return out


def calibrated_summary(logits: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Fit the temperature on these (validation) logits and score them: `summary_metrics` of the calibrated
    probabilities, plus "temperature" and "ece_before_calibration" (what training and `calibrate` store)."""
    temperature = fit_temperature(logits, labels)
    metrics = summary_metrics(labels, softmax(logits, temperature), class_names)
    metrics["ece_before_calibration"] = expected_calibration_error(softmax(logits), labels)
    metrics["temperature"] = temperature
    return metrics
