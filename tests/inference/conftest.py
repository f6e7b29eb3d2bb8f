"""Fixtures for inference tests: test images made in memory and a copy of the tiny checkpoint to write beside."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture()
def model_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint (tests write OOD and ONNX files beside it)."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    return folder


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    from skimage.data import chelsea

    return encode(chelsea(), "JPEG")


@pytest.fixture(scope="session")
def gray_photo_png() -> bytes:
    from skimage.data import camera

    return encode(camera())


@pytest.fixture(scope="session")
def noise_png() -> bytes:
    return encode(np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8))
