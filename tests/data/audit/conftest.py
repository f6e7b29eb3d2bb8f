"""Builders shared by the audit tests: synthetic heads and grayscale reads of sample scans.

Plain functions behind fixtures, because tests run with --import-mode=importlib, where a test module
cannot import a sibling helper module; module-level use goes through `pytest` fixtures below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image


def make_phantom(seed: int, size: int = 256) -> np.ndarray:
    """A synthetic head: an ellipse of smooth random texture with a few bright blobs, unlike any other seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    ry, rx = rng.uniform(0.34, 0.46) * size, rng.uniform(0.26, 0.4) * size
    head = ((yy - size / 2) / ry) ** 2 + ((xx - size / 2) / rx) ** 2 <= 1
    tex = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), rng.uniform(2, 5))
    img = np.where(head, 40 + 180 * (tex - tex.min()) / (tex.max() - tex.min()), 0)
    for _ in range(5):
        (y, x), r = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.03, 0.08) * size
        img[((yy - y) ** 2 + (xx - x) ** 2 <= r * r) & head] = rng.uniform(160, 255)
    return img.astype(np.uint8)


def read_gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


@pytest.fixture(scope="session")
def phantom() -> Callable[..., np.ndarray]:
    """make_phantom(seed, size=256) -> a synthetic head, uint8."""
    return make_phantom


@pytest.fixture(scope="session")
def gray() -> Callable[[Path], np.ndarray]:
    """read_gray(path) -> the file as a uint8 grayscale array."""
    return read_gray
