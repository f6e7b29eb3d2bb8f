"""Public entry points: read a path or bytes as one 2-D scan or as all of its slices.

The format is found from the content (magic bytes), never from the suffix alone, so a PNG
named .jpg or a DICOM without suffix reads fine. Only `ScanReadError` (a ValueError) leaves
these functions for bad input; a wrong argument type is a TypeError, a bad `slices` value a
ValueError, as for any Python API misuse.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from braintumor.io.common import SliceChoice, reduce_factor, reduce_pixels
from braintumor.io.images import PIL_FORMATS, decode_image
from braintumor.io.sniff import sniff
from braintumor.io.source import label_for, load_bytes, walk_tree
from braintumor.io.types import Scan, ScanReadError

SCAN_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dcm", ".dicom", ".ima", ".nii", ".nii.gz",
)  # fmt: skip

Source = str | Path | bytes


def is_scan_file(path: str | Path, *, sniff_content: bool = False) -> bool:
    """True when the file name has a suffix the reader handles (case-insensitive).

    Args:
        path: file name or path.
        sniff_content: also accept a file without such a suffix whose first bytes are a
            supported format (e.g. DICOM exports named "IM0001"). Reads up to 4 KiB of the file.
    """
    if str(path).lower().endswith(SCAN_SUFFIXES):
        return True
    if not sniff_content:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        sniff(head, str(path))
    except (OSError, ScanReadError):
        return False
    return True


def find_scans(folder: str | Path, *, sniff_content: bool = False) -> tuple[list[Path], list[Path]]:
    """The scan files below `folder` (sorted, links followed, hidden names skipped) and the entries left out.

    What only reading can explain counts as a scan: a folder that could not be listed, a broken link, a
    link loop. Reading it then reports the problem with the other unreadable files, so nothing below
    `folder` is skipped without a word. `sniff_content` as in `is_scan_file`.
    """
    scans, others = [], []
    for path in walk_tree(folder):
        if path.is_dir() or not path.exists() or is_scan_file(path, sniff_content=sniff_content):
            scans.append(path)
        else:
            others.append(path)
    return scans, others


def read_scan(
    source: Source,
    *,
    name: str | None = None,
    slices: Literal["middle"] | int = "middle",
    reduce_to: int | None = None,
) -> Scan:
    """Read one scan as a single 2-D grayscale slice.

    Args:
        source: a path, or the file content as bytes.
        name: the name to report in errors and in `Scan.source` (default: the path, or "<bytes>").
        slices: which slice of a volume, multi-frame DICOM or multi-page TIFF: "middle"
            (default; for NIfTI the middle axial slice) or an index (negative counts from the end).
            A plain image has one slice.
        reduce_to: a speed hint for callers that only need a small image (hashing, previews):
            the decoded short side is kept >= reduce_to, exact sizes are not guaranteed. JPEGs are
            scaled inside the decoder (libjpeg DCT scaling via `Image.draft`, several times faster);
            other formats are shrunk after decoding by an integer box mean.

    Returns:
        The slice: uint8/uint16/float32 pixels for images, float32 in [0, 1] for DICOM,
        float32 stored values for NIfTI (see `Scan`).

    Raises:
        ScanReadError: the file is missing, unreadable, not a supported scan, corrupt, truncated,
            too small (< 32 px a side), too large (> 100 megapixels) or holds NaN/inf values.
    """
    return _read(source, name, slices, reduce_to)[0]


def read_slices(source: Source, *, name: str | None = None, reduce_to: int | None = None) -> list[Scan]:
    """Read every slice of a scan: axial slices of a NIfTI volume, frames of a DICOM, TIFF pages.

    A plain image gives a list of one. Arguments and errors are those of `read_scan`.
    """
    return _read(source, name, "all", reduce_to)


def _read(source: Source, name: str | None, which: SliceChoice, reduce_to: int | None) -> list[Scan]:
    if reduce_to is not None and reduce_to < 1:
        raise ValueError(f"reduce_to must be a positive number of pixels, not {reduce_to}")
    if which not in ("middle", "all") and (not isinstance(which, int) or isinstance(which, bool)):
        raise ValueError(f"slices must be 'middle' or an int index, not {which!r}")
    label = label_for(source, name)
    data = load_bytes(source, label)
    kind = sniff(data, label)
    if kind in PIL_FORMATS:
        scans = decode_image(data, label, kind, which, reduce_to)
    elif kind == "dicom":
        from braintumor.io.dicom import decode_dicom  # lazy: pydicom costs ~0.15 s to import

        scans = decode_dicom(data, label, which)
    else:  # "nifti" or "gzip" (.nii.gz)
        from braintumor.io.nifti import decode_nifti

        scans = decode_nifti(data, label, which)
    return [_reduced(scan, reduce_to) for scan in scans] if reduce_to else scans


def _reduced(scan: Scan, reduce_to: int) -> Scan:
    factor = reduce_factor(scan.pixels.shape, reduce_to)
    if factor < 2:
        return scan
    spacing = (scan.spacing[0] * factor, scan.spacing[1] * factor) if scan.spacing else None
    return dataclasses.replace(scan, pixels=reduce_pixels(scan.pixels, factor), spacing=spacing)
