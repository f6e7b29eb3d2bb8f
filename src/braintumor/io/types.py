"""Value types shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ScanReadError(ValueError):
    """A file could not be read as a scan. The message always names the file and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class Scan:
    """One 2-D grayscale slice and what is known about it.

    Attributes:
        pixels: 2-D array (H, W). uint8 or uint16 for 8/16-bit images (full precision kept),
            float32 for float images, DICOM (after rescale and windowing, in [0, 1]) and NIfTI.
        source: file path or the name given for bytes input; never header contents.
        format: "jpeg", "png", "bmp", "tiff", "webp", "dicom" or "nifti".
        mode: original image mode (PIL mode, DICOM photometric interpretation, or "volume").
        slice_index: index of this slice in its volume or multi-frame file, else None.
        num_slices: number of slices in the source (1 for plain images).
        spacing: pixel spacing (row, col) in mm when the file states it.
        extra: non-identifying metadata only (never patient fields).
    """

    pixels: np.ndarray
    source: str
    format: str
    mode: str
    slice_index: int | None = None
    num_slices: int = 1
    spacing: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]

    def as_float01(self) -> np.ndarray:
        """Pixels as float32 in [0, 1]: 8-bit by 255, 16-bit by the bit depth the values use, floats by min-max.

        A 16-bit image is divided by 2**bits - 1 for the fewest bits (8 to 16) that hold its maximum:
        scanners store 12- or 14-bit data in 16-bit files, which divided by 65535 would keep a
        sixteenth of the grey levels once made 8-bit; a full 16-bit image is divided by 65535 as before,
        and relative intensities are kept either way (no stretch to the image's own maximum).
        DICOM pixels are already windowed into [0, 1] and are returned as they are: a min-max
        stretch would undo the window the file asks for.
        """
        px = self.pixels
        if self.format == "dicom":
            return px.astype(np.float32, copy=False)
        if px.dtype == np.uint8:
            return px.astype(np.float32) / 255.0
        if px.dtype == np.uint16:
            bits = max(8, int(px.max()).bit_length())
            return px.astype(np.float32) / float(2**bits - 1)
        px = px.astype(np.float32)
        lo, hi = float(px.min()), float(px.max())
        if hi <= lo:
            return np.zeros_like(px)
        return (px - lo) / (hi - lo)

    def as_uint8(self) -> np.ndarray:
        """Pixels as uint8 (0-255), for hashing, display and the decode cache."""
        if self.pixels.dtype == np.uint8:
            return self.pixels
        return np.clip(self.as_float01() * 255.0 + 0.5, 0, 255).astype(np.uint8)
