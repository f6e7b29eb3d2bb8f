"""Metric functions on a hand-worked example and against scikit-learn on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from braintumor.metrics.calibration import expected_calibration_error
from braintumor.metrics.classification import brier_score, full_metrics, negative_log_likelihood, specificity_per_class

# Hand-worked example: classes a, b, c with supports 3, 2, 1.
LABELS = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],  # true a, predicted a (right)
        [0.6, 0.3, 0.1],  # true a, predicted a (right)
        [0.3, 0.6, 0.1],  # true a, predicted b (wrong)
        [0.2, 0.7, 0.1],  # true b, predicted b (right)
        [0.1, 0.4, 0.5],  # true b, predicted c (wrong)
        [0.1, 0.2, 0.7],  # true c, predicted c (right)
    ]
)
NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def worked() -> dict:
    return full_metrics(LABELS, PROBS, NAMES, probs_uncalibrated=PROBS)


def test_hand_worked_counts_and_accuracy(worked: dict) -> None:
    # predictions [a, a, b, b, c, c]; rows = true, columns = predicted
    assert worked["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert worked["n"] == 6
    assert worked["accuracy"] == pytest.approx(4 / 6)  # 4 right of 6
    # balanced accuracy = mean recall = (2/3 + 1/2 + 1) / 3 = 13/18
    assert worked["balanced_accuracy"] == pytest.approx(13 / 18)


def test_hand_worked_per_class(worked: dict) -> None:
    # a: TP 2, FP 0, FN 1, TN 3 -> P 1, R 2/3, F1 2*1*(2/3)/(5/3) = 4/5, spec 3/3
    # b: TP 1, FP 1, FN 1, TN 3 -> P 1/2, R 1/2, F1 1/2, spec 3/4
    # c: TP 1, FP 1, FN 0, TN 4 -> P 1/2, R 1, F1 2*(1/2)/(3/2) = 2/3, spec 4/5
    expected = {
        "a": (1.0, 2 / 3, 4 / 5, 1.0, 3),
        "b": (0.5, 0.5, 0.5, 0.75, 2),
        "c": (0.5, 1.0, 2 / 3, 0.8, 1),
    }
    for name, (p, r, f1, spec, support) in expected.items():
        row = worked["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"], row["specificity"]) == pytest.approx((p, r, f1, spec))
        assert row["support"] == support


def test_hand_worked_averages(worked: dict) -> None:
    # macro P (1 + 1/2 + 1/2)/3 = 2/3; macro R 13/18; macro F1 (4/5 + 1/2 + 2/3)/3 = 59/90
    assert worked["macro"]["precision"] == pytest.approx(2 / 3)
    assert worked["macro"]["recall"] == pytest.approx(13 / 18)
    assert worked["macro"]["f1"] == pytest.approx(59 / 90)
    assert worked["macro_f1"] == pytest.approx(59 / 90)
    # macro specificity (1 + 3/4 + 4/5)/3 = 0.85; weighted (3*1 + 2*3/4 + 1*4/5)/6 = 5.3/6
    assert worked["macro"]["specificity"] == pytest.approx(0.85)
    assert worked["weighted"]["specificity"] == pytest.approx(5.3 / 6)
    # weighted F1 (3*4/5 + 2*1/2 + 1*2/3)/6 = 61/90; weighted recall = accuracy
    assert worked["weighted"]["f1"] == pytest.approx(61 / 90)
    assert worked["weighted_f1"] == pytest.approx(61 / 90)
    assert worked["weighted"]["recall"] == pytest.approx(4 / 6)


def test_hand_worked_auc(worked: dict) -> None:
    # a: positives {.8,.6,.3} all above negatives {.2,.1,.1} -> 1
    # b: positives {.7,.4} vs negatives {.1,.3,.6,.2}: .7 beats 4, .4 beats 3 -> 7/8
    # c: positive {.7} above negatives {.1,.1,.1,.1,.5} -> 1
    assert [worked["per_class"][c]["auc_roc"] for c in NAMES] == pytest.approx([1.0, 7 / 8, 1.0])
    assert worked["auc_roc_macro"] == pytest.approx((1 + 7 / 8 + 1) / 3)


def test_hand_worked_brier_and_nll(worked: dict) -> None:
    # sum of squared errors per row: .06, .26, .86, .14, .62, .14 -> total 2.08, mean 2.08/6
    assert worked["brier"] == pytest.approx(2.08 / 6)
    # true-class probabilities .8 .6 .3 .7 .4 .7, product 0.028224
    assert worked["nll"] == pytest.approx(-math.log(0.028224) / 6)


def test_hand_worked_ece() -> None:
    # Top-label confidences .9 (right), .9 (wrong), .7 (right), .7 (right); 15 equal bins:
    # bin of .9: accuracy 1/2, confidence .9 -> |.5 - .9| = .4, weight 2/4
    # bin of .7: accuracy 1,   confidence .7 -> |1 - .7| = .3, weight 2/4  => ECE = .2 + .15 = .35
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.7, 0.3], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.35, abs=1e-6)


def test_ece_calibrated_and_uncalibrated_use_their_own_probabilities() -> None:
    labels = np.array([0, 0])
    calibrated = np.array([[0.6, 0.4], [0.6, 0.4]])  # both right at confidence .6 -> |1 - .6| = .4
    raw = np.array([[0.99, 0.01], [0.01, 0.99]])  # .99 right and .99 wrong -> |.5 - .99| = .49
    m = full_metrics(labels, calibrated, ["x", "y"], probs_uncalibrated=raw)
    assert m["ece"] == pytest.approx(0.4, abs=1e-6)
    assert m["ece_uncalibrated"] == pytest.approx(0.49, abs=1e-6)
    # a one-class test set has no negatives for its class: specificity undefined, not 0 or NaN
    assert m["per_class"]["x"]["specificity"] is None
    assert m["macro"]["specificity"] is None


def test_against_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n, k = 400, 4
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(n), labels] += rng.uniform(0, 0.8, n)  # some skill, so figures are not all chance
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    m = full_metrics(labels, probs, list("wxyz"))
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert m["weighted"]["precision"] == pytest.approx(precision_score(labels, pred, average="weighted"))
    assert m["auc_roc_macro"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["nll"] == pytest.approx(log_loss(labels, probs))
    assert m["brier"] == pytest.approx(brier_score_loss(labels, probs, scale_by_half=False))
    for c, name in enumerate("wxyz"):
        # specificity of class c = recall of "not c"
        assert m["per_class"][name]["specificity"] == pytest.approx(recall_score(labels != c, pred != c))
    assert m["ece"] == pytest.approx(_ece_reference(probs, labels), abs=1e-5)


def _ece_reference(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Plain numpy top-label ECE, the textbook definition, as an independent check."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    bins = np.clip(np.ceil(conf * n_bins) - 1, 0, n_bins - 1).astype(int)
    return sum(abs(right[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean() for b in np.unique(bins))


def test_subset_of_classes_counts_foreign_predictions_as_errors() -> None:
    # A test folder with only classes 0 and 1 of a 3-class model; one scan is predicted as class 2.
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    m = full_metrics(labels, probs, ["p", "q", "r"])
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["per_class"]["r"]["support"] == 0
    assert m["per_class"]["r"]["auc_roc"] is None
    assert m["per_class"]["r"]["precision"] == 0.0  # its one prediction is wrong
    # macro over the present classes p (F1 2/3: P 1, R 1/2) and q (F1 1)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["macro"]["recall"] == pytest.approx((1 / 2 + 1) / 2)


def test_two_class_brier_is_not_halved() -> None:
    # one scan, p(true) = .6: (1 - .6)^2 + (0 - .4)^2 = .32 (the multiclass definition, not .16)
    assert brier_score(np.array([0]), np.array([[0.6, 0.4]])) == pytest.approx(0.32)
    assert negative_log_likelihood(np.array([1]), np.array([[0.75, 0.25]])) == pytest.approx(math.log(4))


def test_specificity_is_undefined_without_negatives() -> None:
    assert np.isnan(specificity_per_class(np.array([[3]]))[0])


def test_full_metrics_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="no scans"):
        full_metrics(np.array([], dtype=int), np.zeros((0, 2)), ["x", "y"])
