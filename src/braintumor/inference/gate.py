"""A cheap sanity gate before the model: refuse colour photographs and blank images.

MRI slices are grayscale. Many published scans are stored as RGB files, but their colour channels are
(nearly) equal; a photograph is not. On the three development datasets (10,340 image files) at most 4.1 %
of a scan's pixels have a chroma above 20 (a few scans carry coloured annotations), while everyday colour
photos have 37-87 % (skimage's chelsea, astronaut, coffee, rocket); the gate refuses above 15 %.
A blank image (uniform, or nearly so) carries nothing to classify, whatever its format.

The gate is no out-of-distribution detector: a grayscale photo passes it. That is the job of `ood.py`.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

CHROMA_LEVEL = 20.0  # YCbCr chroma magnitude (0-181) above which a pixel counts as coloured
MAX_COLOURED_SHARE = 0.15  # share of coloured pixels above which an image is a colour photo, not a scan
MIN_CONTRAST = 8  # uint8 levels between the 1st and 99th percentile below which an image is blank
_THUMB = 96  # px; chroma statistics need only a thumbnail (JPEG decodes it by DCT scaling, fast)
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def coloured_share(data: bytes) -> float | None:
    """Share of strongly coloured pixels of an image file, or None when it is not a colour image.

    DICOM, NIfTI and unreadable content give None: the reader judges those.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings about odd files are the reader's business
            with Image.open(io.BytesIO(data)) as im:
                if im.mode in _GRAY_MODES:
                    return None
                if im.format == "JPEG":
                    im.draft("RGB", (_THUMB, _THUMB))
                rgb = im.convert("RGB")
                rgb.thumbnail((_THUMB, _THUMB))
    except Exception:  # not an image Pillow knows (DICOM, NIfTI) or a broken one: read_scan reports it
        return None
    ycc = np.asarray(rgb.convert("YCbCr"), dtype=np.float32)
    chroma = np.hypot(ycc[..., 1] - 128.0, ycc[..., 2] - 128.0)
    return float((chroma > CHROMA_LEVEL).mean())


def colour_refusal(data: bytes) -> str | None:
    """Why the file is refused as a colour photograph, or None when it passes."""
    share = coloured_share(data)
    if share is not None and share > MAX_COLOURED_SHARE:
        return (
            f"this looks like a colour photograph ({share:.0%} of pixels strongly coloured), not a brain MRI scan; "
            "no prediction is made"
        )
    return None


def blank_refusal(pixels: np.ndarray) -> str | None:
    """Why a uint8 image is refused as blank (nearly uniform), or None when it has contrast."""
    lo, hi = np.percentile(pixels[:: max(1, pixels.shape[0] // 256), :: max(1, pixels.shape[1] // 256)], (1, 99))
    if hi - lo < MIN_CONTRAST:
        return "the image is blank (nearly uniform), not a brain MRI scan; no prediction is made"
    return None
