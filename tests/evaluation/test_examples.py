"""Worst-mistake selection and the CAM overlay hook of the report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from braintumor.evaluation.examples import gradcam_overlays, worst_misclassified
from braintumor.io import read_scan
from braintumor.models import load_model


def test_worst_misclassified_orders_by_confidence() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.array(
        [
            [0.2, 0.7, 0.1],  # wrong at .7
            [0.9, 0.05, 0.05],  # right
            [0.95, 0.03, 0.02],  # wrong at .95
            [0.1, 0.5, 0.4],  # right
            [0.3, 0.6, 0.1],  # wrong at .6
        ]
    )
    assert worst_misclassified(labels, probs, k=12) == [2, 0, 4]
    assert worst_misclassified(labels, probs, k=2) == [2, 0]
    assert worst_misclassified(labels[[1, 3]], probs[[1, 3]]) == []


def test_gradcam_hook_overlays_original_scans(tiny_checkpoint: Path, samples_dir: Path) -> None:
    pytest.importorskip("braintumor.explain.cam", reason="braintumor.explain (grad-cam) not available")
    loaded = load_model(tiny_checkpoint)
    paths = sorted((samples_dir / "glioma").iterdir())
    overlays, note = gradcam_overlays(loaded, paths, [1, 2])
    assert note == ""
    for path, overlay in zip(paths, overlays, strict=True):
        assert overlay.shape == (*read_scan(path).pixels.shape, 3) and overlay.dtype == np.uint8


def test_gradcam_hook_falls_back_without_explain(
    tiny_checkpoint: Path, samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "braintumor.explain.cam", None)  # import now raises ImportError
    paths = sorted((samples_dir / "glioma").iterdir())
    overlays, note = gradcam_overlays(load_model(tiny_checkpoint), paths, [0, 0])
    assert overlays == [None, None]
    assert "CAM overlays unavailable" in note


def test_the_mistakes_grid_shows_each_scan_once(samples_dir) -> None:
    import cv2
    from PIL import Image

    from braintumor.evaluation.examples import distinct

    scans = [np.asarray(Image.open(p).convert("L").resize((128, 128))) for p in sorted(samples_dir.rglob("*.jpg"))]
    a, b = scans[0], scans[1]
    resized = cv2.resize(cv2.resize(a, (90, 90)), (128, 128))  # a re-encoded, resized copy
    images = [a, resized, a[:, ::-1].copy(), b, a, scans[2]]
    assert distinct(range(len(images)), images.__getitem__, k=12) == [0, 3, 5]
    assert distinct(range(len(images)), images.__getitem__, k=2) == [0, 3]
