"""Read one scan (image, DICOM or NIfTI) into a 2-D grayscale array plus metadata.

`read_scan` gives one slice, `read_slices` every slice; formats are found by content. Any bad
input raises `ScanReadError` (a ValueError) naming the file and the reason.
"""

from braintumor.io.common import MAX_PIXELS, MIN_SIDE
from braintumor.io.reader import SCAN_SUFFIXES, find_scans, is_scan_file, read_scan, read_slices
from braintumor.io.types import Scan, ScanReadError

__all__ = [
    "MAX_PIXELS",
    "MIN_SIDE",
    "SCAN_SUFFIXES",
    "Scan",
    "ScanReadError",
    "find_scans",
    "is_scan_file",
    "read_scan",
    "read_slices",
]
