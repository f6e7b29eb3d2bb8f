"""The scans a reader should look at: the most confident mistakes, with LayerCAM overlays where available."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


def worst_misclassified(labels: np.ndarray, probs: np.ndarray, k: int | None = 12) -> list[int]:
    """Row indices of up to `k` (None: all) wrong predictions, most confident first (ties: lower index first)."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    confidence = probs[wrong, pred[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return [int(i) for i in wrong[order[:k]]]


COPY_MAD = 8.0  # mean |difference| (0-255) of 32 px thumbnails below which two model inputs are one scan


def distinct(rows: Sequence[int], image_of: Callable[[int], np.ndarray], k: int) -> list[int]:
    """The first `k` of `rows` whose images are not copies of an earlier kept one (mirror images included).

    Public test sets hold re-encoded, resized and mirrored copies of one scan; a mistakes grid of k copies
    shows one mistake k times. The model's own inputs (already cropped to the head) are compared.
    """
    kept: list[int] = []
    thumbs: list[np.ndarray] = []
    for row in rows:
        small = cv2.resize(image_of(row), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if any(min(np.abs(small - t).mean(), np.abs(small[:, ::-1] - t).mean()) < COPY_MAD for t in thumbs):
            continue
        kept.append(row)
        thumbs.append(small)
        if len(kept) == k:
            break
    return kept


def gradcam_overlays(loaded, paths: Sequence[Path], targets: Sequence[int]) -> tuple[list[np.ndarray | None], str]:
    """CAM overlay hook for the report: RGB overlays (the explainer's default method) of the `targets` class.

    Uses `braintumor.explain` (`Explainer`, `overlay_image`) when it is installed and working; the
    report falls back to the plain model input otherwise. Never raises: a failure is logged and
    described in the returned note, because a missing overlay must not cost the user the report.

    Args:
        loaded: the `LoadedModel` being evaluated.
        paths: absolute paths of the scans.
        targets: class index to explain per scan (the predicted class, for mistakes).

    Returns:
        (overlay or None per scan, a note for the report; empty when every overlay was made).
    """
    if not paths:
        return [], ""
    try:
        from braintumor.explain.cam import Explainer
        from braintumor.explain.overlay import overlay_image
    except ImportError as exc:  # explain not installed (grad-cam missing) or not in this version
        log.warning("CAM overlays skipped: %s", exc)
        return [None] * len(paths), f"CAM overlays unavailable ({exc}); showing the model input instead."
    from braintumor.io import read_scan

    explainer = Explainer(loaded)
    overlays: list[np.ndarray | None] = []
    failed: list[str] = []
    for path, target in zip(paths, targets, strict=True):
        try:
            scan = read_scan(path)
            overlays.append(overlay_image(scan, explainer.explain(scan, target=int(target)).cam))
        except Exception as exc:  # one bad overlay must not abort the report; it is listed below
            log.warning("CAM overlay failed for %s: %s", path, exc)
            overlays.append(None)
            failed.append(f"{Path(path).name} ({type(exc).__name__}: {exc})")
    note = f"CAM overlay failed for: {'; '.join(failed)}." if failed else ""
    return overlays, note
