"""Small files that decode to gigabytes: refused from their headers, or read a slice at a time.

Each file is read in a child process whose peak resident memory is compared with its peak before the
read, so a decoder that allocates the whole bomb shows up whatever the library that allocated it.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

PEAK_LIMIT_MB = 300  # far below what any of these files decodes to (0.5-1.7 GB), far above one slice

_CHILD = """
import json, resource, sys
from braintumor.io import ScanReadError, read_scan
import nibabel, pydicom.pixels, numpy  # imported before the baseline: their import is no decoding cost
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    scan = read_scan(sys.argv[1])
    outcome = {"shape": list(scan.shape)}
except ScanReadError as exc:
    outcome = {"error": str(exc)}
outcome["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(outcome))
"""


def _peak(path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _nifti_of_zeros(path: Path, shape: tuple[int, int, int]) -> Path:
    """A float32 .nii.gz of zeros written as a stream: the test never holds the volume either."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    zeros = bytes(2**22)
    with gzip.open(path, "wb", compresslevel=6) as gz:
        gz.write(header.binaryblock + bytes(4))
        for _ in range(int(np.prod(shape)) * 4 // len(zeros)):
            gz.write(zeros)
    return path


@pytest.mark.slow
def test_nifti_of_zeros_is_read_one_slice_at_a_time(tmp_path: Path) -> None:
    path = _nifti_of_zeros(tmp_path / "zeros.nii.gz", (1024, 1024, 128))  # 512 MB as float32, 0.5 MB on disk
    assert path.stat().st_size < 2**20
    outcome = _peak(path)
    assert outcome.get("shape") == [1024, 1024], outcome
    assert outcome["grew_mb"] < PEAK_LIMIT_MB, outcome


@pytest.mark.slow
def test_png_of_9999_squared_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (9999, 9999)).save(path, optimize=False)
    outcome = _peak(path)
    assert "over the 512 MB budget per file" in outcome.get("error", ""), outcome
    assert outcome["grew_mb"] < PEAK_LIMIT_MB, outcome


@pytest.mark.slow
def test_deflated_dicom_of_8192_squared_pixels_is_refused(tmp_path: Path, dicom_bytes) -> None:
    from pydicom import dcmread
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = dcmread(io.BytesIO(dicom_bytes(np.zeros((64, 64), np.uint16))))
    ds.Rows = ds.Columns = 8192
    ds.PixelData = bytes(8192 * 8192 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 2**20
    outcome = _peak(path)
    assert "over the 512 MB budget per file" in outcome.get("error", ""), outcome
    assert outcome["grew_mb"] < PEAK_LIMIT_MB, outcome


def test_a_slice_read_lazily_matches_the_same_slice_of_the_whole_volume(nifti_bytes) -> None:
    from braintumor.io import read_scan, read_slices

    rng = np.random.default_rng(0)
    volume = rng.random((40, 48, 36), dtype=np.float32)
    flip_permute = np.array([[0, -2, 0, 10], [-1, 0, 0, 5], [0, 0, 3, -7], [0, 0, 0, 1]], dtype=float)
    axial_first = np.array([[0, 0, 1, 0], [0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    for affine in (np.eye(4), flip_permute, axial_first):
        for gz in (False, True):
            data = nifti_bytes(volume, affine, gz=gz)
            every = read_slices(data)
            for index in ("middle", 0, -1, 7):
                one = read_scan(data, slices=index)
                assert np.array_equal(one.pixels, every[one.slice_index].pixels), (affine, gz, index)
                assert one.spacing == every[one.slice_index].spacing
