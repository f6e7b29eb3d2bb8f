"""Builders for small in-memory scans: images via Pillow, DICOM via pydicom, NIfTI via nibabel.

They are fixtures returning functions because tests run with --import-mode=importlib, where a
test module cannot import a sibling helper module.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def encode_image(im: Image.Image, fmt: str, **save_kwargs: Any) -> bytes:
    """The bytes of `im` saved in Pillow format `fmt`."""
    buf = io.BytesIO()
    im.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def encode_dicom(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **attrs: Any,
) -> bytes:
    """An uncompressed MR DICOM file built from scratch; 3-D `pixels` become a multi-frame file.

    `attrs` are set on the dataset after the pixel data (e.g. RescaleSlope=2, WindowCenter=100).
    The patient name is set on purpose so tests can check it never leaks.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset("scan.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "MR", "Doe^Jane", "SECRET-ID-123"
    bits = pixels.dtype.itemsize * 8
    ds.set_pixel_data(pixels, photometric, bits)
    for key, value in attrs.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    return data if preamble else data[132:]


def encode_nifti(volume: np.ndarray, affine: np.ndarray, *, gz: bool = False, version: int = 1) -> bytes:
    """A single-file NIfTI-1 (or NIfTI-2) volume, optionally gzip-compressed (.nii.gz)."""
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    data = cls(volume, affine).to_bytes()
    return gzip.compress(data, mtime=0) if gz else data


@pytest.fixture(scope="session")
def image_bytes() -> Callable[..., bytes]:
    """encode_image(im, fmt, **save_kwargs) -> bytes."""
    return encode_image


@pytest.fixture(scope="session")
def dicom_bytes() -> Callable[..., bytes]:
    """encode_dicom(pixels, photometric=..., preamble=..., transfer_syntax=..., **attrs) -> bytes."""
    return encode_dicom


@pytest.fixture(scope="session")
def nifti_bytes() -> Callable[..., bytes]:
    """encode_nifti(volume, affine, gz=False, version=1) -> bytes."""
    return encode_nifti


@pytest.fixture(scope="session")
def sample_gray(samples_dir) -> np.ndarray:
    """One shipped sample scan as a 64x64 uint8 array (a real MRI texture, small enough for fuzzing)."""
    path = sorted(samples_dir.rglob("*.jpg"))[0]
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((64, 64), Image.Resampling.BILINEAR))
