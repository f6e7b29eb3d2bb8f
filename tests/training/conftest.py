"""A tiny synthetic dataset whose only signal is where a bright square sits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# CLI flags of a seconds-long training run: a tiny CNN from scratch on 64 px scans, no worker processes.
TINY = ["--arch", "simple_cnn", "--no-pretrained", "--image-size", "64", "--batch-size", "8", "--num-workers", "0"]


def make_square_dataset(root: Path, per_class: int = 24, size: int = 64, seed: int = 0) -> Path:
    """ROOT/Training/{plain,square}/*.png: a noisy dark 'head' disc, with a bright square or without.

    Presence (not position) is the signal, so flips and rotations in the augmentation keep labels true.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.45) ** 2
    for label in ("plain", "square"):
        folder = root / "Training" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = head * 60 + rng.normal(0, 12, (size, size))
            if label == "square":
                y0, x0 = (int(v) for v in rng.integers(size // 4, size // 2, size=2))
                img[y0 : y0 + size // 6, x0 : x0 + size // 6] = 230
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{label}_{i:03d}.png")
    return root


def make_weak_folder(square_data: Path, root: Path, corrupt: bool = False) -> Path:
    """Scans with a square, filed under a folder name the model does not know as a class."""
    folder = root / "coarse" / "marked"
    folder.mkdir(parents=True)
    for path in sorted((square_data / "Training" / "square").iterdir())[:6]:
        shutil.copy(path, folder / ("w_" + path.name))
    if corrupt:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root / "coarse"


@pytest.fixture()
def square_data(tmp_path: Path) -> Path:
    return make_square_dataset(tmp_path / "squares")
