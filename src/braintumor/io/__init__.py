"""Read one scan (image, DICOM or NIfTI) into a 2-D grayscale array plus metadata."""

from braintumor.io.reader import SCAN_SUFFIXES, is_scan_file, read_scan, read_slices
from braintumor.io.types import Scan, ScanReadError

__all__ = ["SCAN_SUFFIXES", "Scan", "ScanReadError", "is_scan_file", "read_scan", "read_slices"]
