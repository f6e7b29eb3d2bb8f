"""Dispatch a path or bytes to the right decoder. (Provisional image-only version.)"""

from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from braintumor.io.types import Scan, ScanReadError

SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dcm", ".dicom", ".nii", ".nii.gz")


def is_scan_file(path: str | Path) -> bool:
    """True when the name has a suffix the reader handles (DICOM files without suffix are found by sniffing)."""
    name = str(path).lower()
    return name.endswith(SCAN_SUFFIXES)


def read_scan(source: str | Path | bytes, *, name: str | None = None, slices: Literal["middle"] = "middle") -> Scan:
    """Read one scan as a 2-D grayscale slice (the middle one for volumes)."""
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with Image.open(_io.BytesIO(data)) as im:
            mode = im.mode
            px = np.asarray(im.convert("L"))
    except OSError as exc:
        raise ScanReadError(label, f"not readable: {exc}") from exc
    return Scan(pixels=px, source=label, format="image", mode=mode)


def read_slices(source: str | Path | bytes, *, name: str | None = None) -> list[Scan]:
    """Read every slice of a scan (one for plain images)."""
    return [read_scan(source, name=name)]
