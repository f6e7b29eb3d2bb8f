"""Limits and small checks shared by every decoder.

The limits are checked on header values before any pixel data is decoded, so a hostile or
corrupt file is refused in microseconds instead of allocating gigabytes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from braintumor.io.types import ScanReadError

MIN_SIDE = 32  # px; smaller planes are icons or thumbnails, not scans a model can use
MAX_PIXELS = 100_000_000  # px per plane; above this a file is treated as a decompression bomb
MAX_VOXELS = 2**28  # voxels in one volume (about 268 M, 1 GiB as float32): a 512x512x1024 CT fits
MAX_FILE_BYTES = 4 * 2**30  # a file larger than this is not read into memory at all
# Bytes that decoding one file may allocate (decoded pixels, the decoder's working copies, the output), estimated
# from the header before any pixel is decoded. The one budget of the CLI, the data tools and the server: a
# small compressed file that would decode to gigabytes (a 389 KB 9999x9999 PNG, a 131 KB deflated 8192^2
# DICOM) is refused, not decoded. A 2048x2048 scan costs about 100 MB; a NIfTI slice is read lazily.
MEMORY_BUDGET = 512 * 2**20

SliceChoice = Literal["middle", "all"] | int


def check_plane(label: str, width: int, height: int) -> None:
    """Refuse a 2-D plane whose size is zero, too small or too large.

    Raises:
        ScanReadError: naming the size and the limit it breaks.
    """
    if width <= 0 or height <= 0:
        raise ScanReadError(label, f"image has a zero-size dimension ({width}x{height} px)")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ScanReadError(label, f"image is {width}x{height} px; at least {MIN_SIDE} px per side needed")
    if width * height > MAX_PIXELS:
        mp, limit = width * height / 1e6, MAX_PIXELS // 1_000_000
        raise ScanReadError(
            label, f"image is {width}x{height} px ({mp:.0f} megapixels), over the {limit}-megapixel limit"
        )


def check_budget(label: str, cost: int, what: str) -> None:
    """Refuse work whose estimated memory `cost` (bytes) exceeds `MEMORY_BUDGET`.

    Raises:
        ScanReadError: naming the estimate, the budget and `what` would have needed it.
    """
    if cost > MEMORY_BUDGET:
        raise ScanReadError(
            label,
            f"{what} would need about {cost / 2**20:,.0f} MB of memory, over the {MEMORY_BUDGET // 2**20} MB "
            "budget per file (decompression bomb, or a scan far larger than MRI slices are)",
        )


def check_volume(label: str, shape: tuple[int, ...]) -> None:
    """Refuse a volume with a zero-size axis or more voxels than MAX_VOXELS."""
    if any(int(n) <= 0 for n in shape):
        raise ScanReadError(label, f"volume has a zero-size dimension (shape {tuple(int(n) for n in shape)})")
    voxels = int(np.prod([int(n) for n in shape], dtype=np.float64))
    if voxels > MAX_VOXELS:
        raise ScanReadError(label, f"volume has {voxels / 1e6:.0f} M voxels, over the {MAX_VOXELS // 10**6} M limit")


def check_finite(label: str, pixels: np.ndarray) -> None:
    """Refuse float pixels that contain NaN or infinity (they poison every normalisation)."""
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ScanReadError(label, "pixel values contain NaN or infinite values")


def pick_indices(label: str, count: int, which: SliceChoice) -> list[int]:
    """Indices of the slices to decode: all of them, the middle one, or one given index."""
    if which == "all":
        return list(range(count))
    if which == "middle":
        return [count // 2]
    if isinstance(which, int) and not isinstance(which, bool):
        if -count <= which < count:
            return [which % count]
        raise ScanReadError(label, f"slice {which} requested but the file has {count} slice(s)")
    raise ValueError(f"slices must be 'middle' or an int index, not {which!r}")


def reduce_factor(shape: tuple[int, ...], reduce_to: int | None) -> int:
    """The largest integer shrink factor that keeps the short side >= reduce_to (1: no shrink)."""
    if not reduce_to:
        return 1
    return max(1, min(shape[:2]) // reduce_to)


def reduce_pixels(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a 2-D array by an integer factor (box mean).

    Edge rows/columns that do not fill a whole box are dropped, which is why exact output
    sizes are not guaranteed. Integer dtypes are kept (rounded), floats stay float32.
    """
    if factor < 2:
        return pixels
    h, w = pixels.shape
    h2, w2 = h - h % factor, w - w % factor
    blocks = pixels[:h2, :w2].reshape(h2 // factor, factor, w2 // factor, factor)
    mean = blocks.mean(axis=(1, 3), dtype=np.float64)
    if pixels.dtype.kind in "ui":
        return np.rint(mean).astype(pixels.dtype)
    return mean.astype(np.float32)
