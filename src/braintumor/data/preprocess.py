"""Deterministic per-image preprocessing, applied once before caching.

Public MRI collections frame the head very differently (tight crops, wide black borders,
portrait and landscape canvases, burnt-in text). A classifier trained on raw frames can learn the
framing of each source hospital instead of the anatomy, so every image is cropped to the head,
padded to a square on black (MRI background is black) and resized to one size. The same steps run
at training and at prediction time; `Preprocess.key()` names them for the decode cache and
`Preprocess.to_dict()` stores them in checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from braintumor.io import read_scan

# Bump when the output of any step changes for the same settings, so cached arrays are rebuilt.
PREPROCESS_VERSION = 1


def _otsu_threshold(blurred: np.ndarray) -> float:
    value, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(value)


def _is_frame(stat: np.ndarray, shape: tuple[int, ...]) -> bool:
    """A sparse component touching two or more image edges: a printed frame or border line, not a head."""
    x, y, w, h, area = (int(v) for v in stat[:5])
    edges = (x == 0) + (y == 0) + (x + w == shape[1]) + (y + h == shape[0])
    return edges >= 2 and area < 0.25 * w * h


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, exclusive ends: every box in the package


def head_bbox(
    img: np.ndarray, *, threshold: float | None = None, threshold_frac: float = 0.5, min_area: float = 0.01
) -> Box | None:
    """Bounding box (x0, y0, x1, y1), exclusive ends, of the head in a uint8 grayscale image.

    Foreground is every pixel of the blurred image above `threshold` (default: `threshold_frac`
    times Otsu's threshold; half of Otsu keeps dim scalp and skull that Otsu alone cuts off, while
    staying above the grey background of some scanners). Only connected components of at least
    `min_area` of the image count, so burnt-in letters, rulers and JPEG specks do not widen the box.

    Returns:
        The box, or None when no component is large enough (blank or all-noise image).
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"head_bbox expects a 2-D uint8 image, got {img.dtype} with shape {img.shape}")
    # A blur proportional to the image size makes the mask ignore noise and JPEG ringing.
    k = max(3, (min(img.shape) // 100) | 1)
    blurred = cv2.GaussianBlur(img, (k, k), 0)
    if threshold is None:
        threshold = threshold_frac * _otsu_threshold(blurred)
    mask = (blurred > threshold).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = [
        i
        for i in range(1, n)
        if stats[i, cv2.CC_STAT_AREA] >= min_area * img.size and not _is_frame(stats[i], img.shape)
    ]
    if not keep:
        return None
    x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in keep)
    y0 = min(stats[i, cv2.CC_STAT_TOP] for i in keep)
    x1 = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in keep)
    y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in keep)
    return int(x0), int(y0), int(x1), int(y1)


def crop_box(img: np.ndarray, *, margin: float = 0.04, **bbox_kwargs: Any) -> Box:
    """The region `crop_to_head` keeps: the head's box plus `margin` (fraction of the box side), clipped.

    The whole image when no head is found (see `head_bbox`). Explanations map maps back through it.
    """
    h, w = img.shape
    box = head_bbox(img, **bbox_kwargs)
    if box is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = box
    mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def crop_to_head(img: np.ndarray, *, margin: float = 0.04, **bbox_kwargs: Any) -> np.ndarray:
    """Crop a uint8 grayscale image to `crop_box` (the head plus a margin; unchanged when no head is found)."""
    x0, y0, x1, y1 = crop_box(img, margin=margin, **bbox_kwargs)
    return img if (x0, y0, x1, y1) == (0, 0, img.shape[1], img.shape[0]) else img[y0:y1, x0:x1]


def pad_to_square(img: np.ndarray, value: int = 0) -> np.ndarray:
    """Pad the shorter side symmetrically with `value` (black by default) to make the image square."""
    h, w = img.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(img, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=value)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image to `size` x `size`: area averaging to shrink (no aliasing), cubic to enlarge."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024  # px: a model's square input side (timm's models use 224-600)


def check_image_size(size: object, what: str = "image_size") -> int:
    """`size` as a model input side in pixels; the one place the range is checked.

    Raises:
        ValueError: not a whole number, or outside MIN_IMAGE_SIZE-MAX_IMAGE_SIZE.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ValueError(
            f"{what} must be a whole number of pixels from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, not {size!r}"
        )
    return size


@dataclass(frozen=True)
class Preprocess:
    """Settings of the deterministic preprocessing; calling it maps a 2-D uint8 image to uint8 (S, S).

    `image_size` is the model's input side: a checkpoint stores it once, as its own field, and the other
    settings (`to_dict`) beside it.
    """

    image_size: int  # output side in pixels, the model's input size (see check_image_size)
    crop: bool = True  # crop to the head's bounding box first (removes framing differences)
    margin: float = 0.04  # margin kept around the head box, fraction of the box side; 0-0.2
    threshold_frac: float = 0.5  # foreground threshold as a fraction of Otsu's; 0.2-1.0

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if not 0 <= self.margin <= 1:
            raise ValueError(f"margin must be a fraction in [0, 1], got {self.margin}")
        if not 0 < self.threshold_frac <= 2:
            raise ValueError(f"threshold_frac must be in (0, 2], got {self.threshold_frac}")

    def key(self) -> str:
        """A stable, file-name-safe string naming these settings (used by the decode cache)."""
        crop = f"crop-m{self.margin:g}-t{self.threshold_frac:g}" if self.crop else "nocrop"
        return f"s{self.image_size}-{crop}-p{PREPROCESS_VERSION}"

    def to_dict(self) -> dict[str, Any]:
        """The settings other than `image_size`, as a plain dict for checkpoints and run folders."""
        settings = asdict(self)
        del settings["image_size"]
        return settings

    @classmethod
    def from_dict(cls, d: dict[str, Any], image_size: int) -> Preprocess:
        """Inverse of `to_dict`; unknown keys are an error (they would be silently ignored otherwise).

        Checkpoints written before the size had one home also carry it in `d`: it must then agree.
        """
        d = dict(d)
        stored = d.pop("image_size", image_size)
        if stored != image_size:
            raise ValueError(f"the preprocessing settings say {stored} px but the model's image_size is {image_size}")
        names = {f.name for f in fields(cls)} - {"image_size"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown}; known: {sorted(names)}")
        return cls(image_size=image_size, **d)

    def crop_box(self, img: np.ndarray) -> Box:
        """The region of a 2-D uint8 `img` these settings keep before padding and resizing."""
        if img.dtype != np.uint8 or img.ndim != 2:
            raise ValueError(f"Preprocess expects a 2-D uint8 image, got {img.dtype} with shape {img.shape}")
        if not self.crop:
            return 0, 0, img.shape[1], img.shape[0]
        return crop_box(img, margin=self.margin, threshold_frac=self.threshold_frac)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Apply crop (optional), pad to square and resize to a 2-D uint8 image."""
        x0, y0, x1, y1 = self.crop_box(img)
        return np.ascontiguousarray(resize(pad_to_square(img[y0:y1, x0:x1]), self.image_size))


def load_preprocessed(source: str | Path | bytes, preprocess: Preprocess, *, name: str | None = None) -> np.ndarray:
    """Read one scan (path or bytes) and preprocess it to uint8 (S, S).

    Raises:
        braintumor.io.ScanReadError: the file cannot be read as a scan.
    """
    return preprocess(read_scan(source, name=name).as_uint8())
