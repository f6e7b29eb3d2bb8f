"""Plot functions: arrays in, a Figure out, nothing written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from braintumor.evaluation import plots
from braintumor.metrics.classification import full_metrics

NAMES = ["glioma", "meningioma", "notumor"]


@pytest.fixture()
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = np.array([0] * 10 + [1] * 10)  # class 2 absent, as in a subset test folder
    probs = rng.dirichlet(np.ones(3), 20)
    return labels, probs


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    yield
    assert list(tmp_path.iterdir()) == []  # plot functions never write files


def test_confusion_matrix_shows_every_count() -> None:
    cm = [[5, 1, 0], [2, 7, 1], [0, 0, 4]]
    fig = plots.confusion_matrix_figure(cm, NAMES)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for row in cm for v in row]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == NAMES


def test_roc_draws_present_classes_and_chance(data) -> None:
    fig = plots.roc_figure(*data, NAMES)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert len(labels) == 3  # glioma, meningioma, chance; notumor has no positives
    assert labels[0].startswith("glioma (AUC ") and labels[-1] == "chance"


def test_reliability_has_one_curve_per_probability_set(data) -> None:
    labels, probs = data
    sharp = probs**3 / (probs**3).sum(axis=1, keepdims=True)
    fig = plots.reliability_figure(labels, {"before (T = 1)": sharp, "after (T = 1.5)": probs})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "perfect calibration"
    assert legend[1].startswith("before (T = 1), ECE ") and legend[2].startswith("after (T = 1.5), ECE ")
    assert len(fig.axes) == 2  # the diagram and the confidence histogram


def test_per_class_bars(data) -> None:
    m = full_metrics(*data, NAMES)
    fig = plots.per_class_figure(m["per_class"])
    bars = fig.axes[0].patches
    assert len(bars) == len(NAMES) * len(plots.PER_CLASS_FIELDS)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["glioma\n(n=10)", "meningioma\n(n=10)", "notumor\n(n=0)"]
