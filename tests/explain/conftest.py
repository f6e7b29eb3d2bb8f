"""Fixtures for explain tests: checkpoints made on the spot, and a tiny model trained to find a bright square."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from braintumor.data.pipeline import ScanPipeline
from braintumor.data.preprocess import Preprocess
from braintumor.models import create_model, save_checkpoint

NORM = {"mean": [0.5], "std": [0.5], "per_scan_norm": False}
SQUARE_SIZE = 64  # model input side of the square-finding model
SQUARE_SIDE = 14  # side of the bright square, in model-input pixels


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """A function writing a checkpoint of `model` to a fresh folder and returning that folder."""

    def make(model: torch.nn.Module, class_names: list[str], *, image_size: int = 64, crop: bool = True) -> Path:
        folder = tmp_path_factory.mktemp("ckpt")
        chans = model.creation_args["in_chans"]
        save_checkpoint(
            folder / "model",
            model,
            arch=model.creation_args["arch"],
            num_classes=len(class_names),
            in_chans=chans,
            class_names=class_names,
            image_size=image_size,
            preprocess=Preprocess(image_size=image_size, crop=crop).to_dict(),
            normalization={"mean": [0.5] * chans, "std": [0.5] * chans, "per_scan_norm": False},
        )
        return folder

    return make


@pytest.fixture(scope="session")
def biased_checkpoint(make_checkpoint: Callable[..., Path]) -> Callable[[str], Path]:
    """A function: class name -> an untrained 4-class simple_cnn whose output bias makes it predict that class."""
    classes = ["glioma", "meningioma", "notumor", "pituitary"]

    def make(always: str) -> Path:
        torch.manual_seed(0)
        model = create_model("simple_cnn", num_classes=4, in_chans=1, width=8).eval()
        with torch.no_grad():
            model.classifier[1].bias[:] = -20.0
            model.classifier[1].bias[classes.index(always)] = 20.0
        return make_checkpoint(model, classes)

    return make


def square_scan(rng: np.random.Generator, present: bool) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A dark noisy non-square scan (64-96 px a side), with a bright square when `present`; and the square's box."""
    h, w = int(rng.integers(64, 97)), int(rng.integers(64, 97))
    img = rng.integers(0, 60, size=(h, w)).astype(np.uint8)
    if not present:
        return img, None
    side = SQUARE_SIDE * max(h, w) // SQUARE_SIZE  # the same size once padded to a square and resized
    x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    img[y : y + side, x : x + side] = rng.integers(200, 256)
    return img, (x, y, x + side, y + side)


@pytest.fixture(scope="session")
def square_model(make_checkpoint: Callable[..., Path]) -> Path:
    """simple_cnn (width 8) trained for 40 steps on `square_scan`s: class "square" iff a bright square is present.

    Trained through the same `ScanPipeline` the explainer uses (no crop: the square is the only content).
    """
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pipe = ScanPipeline.from_settings({"crop": False}, NORM, 1, SQUARE_SIZE)
    model = create_model("simple_cnn", num_classes=2, in_chans=1, drop_rate=0.0, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        labels = rng.integers(0, 2, size=32)
        x = torch.stack([pipe(square_scan(rng, bool(y))[0]) for y in labels])
        loss = torch.nn.functional.cross_entropy(model(x), torch.as_tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return make_checkpoint(model.eval(), ["empty", "square"], image_size=SQUARE_SIZE, crop=False)


def has_hooks(model: torch.nn.Module) -> bool:
    """Whether any module of `model` still carries a forward, pre-forward or backward hook."""
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in model.modules()
    )


@pytest.fixture(scope="session")
def hook_check() -> Callable[[torch.nn.Module], bool]:
    return has_hooks


@pytest.fixture(scope="session")
def make_square_scan() -> Callable[[np.random.Generator, bool], tuple[np.ndarray, tuple[int, int, int, int] | None]]:
    return square_scan


def head_scan(h: int = 200, w: int = 300, *, centre: tuple[int, int] = (170, 90), axes: tuple[int, int] = (70, 55)):
    """A synthetic non-square "scan": a bright ellipse (the head) off-centre on black, with a brighter blob in it."""
    import cv2

    img = np.zeros((h, w), dtype=np.uint8)
    cv2.ellipse(img, centre, axes, 0, 0, 360, 120, -1)
    cv2.circle(img, (centre[0] + 25, centre[1] - 15), 6, 250, -1)
    return img


@pytest.fixture(scope="session")
def make_head_scan() -> Callable[..., np.ndarray]:
    return head_scan
