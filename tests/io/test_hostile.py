"""Broken and hostile files: each must raise ScanReadError naming the file and the specific problem."""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLSLossless

import braintumor.io.dicom as dicom_module
from braintumor.io import ScanReadError, read_scan

GRAY = (np.add.outer(np.arange(64), np.arange(64)) % 256).astype(np.uint8)


@dataclass
class Kit:
    """What a case needs to build its file: a folder and the conftest encoders."""

    tmp: Path
    image: Any
    dicom: Any
    nifti: Any

    def write(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def png(self) -> bytes:
        return self.image(Image.fromarray(GRAY), "PNG")

    def jpeg(self) -> bytes:
        return self.image(Image.fromarray(GRAY), "JPEG")

    def edit_dicom(self, **changes: Any) -> bytes:
        """A valid DICOM re-saved after changing attributes (None deletes one)."""
        ds = pydicom.dcmread(io.BytesIO(self.dicom(np.zeros((64, 64), np.uint16))))
        for key, value in changes.items():
            if key == "TransferSyntaxUID":
                ds.file_meta.TransferSyntaxUID = value
            elif value is None:
                delattr(ds, key)
            else:
                setattr(ds, key, value)
        buf = io.BytesIO()
        ds.save_as(buf)
        return buf.getvalue()


@pytest.fixture
def kit(tmp_path, image_bytes, dicom_bytes, nifti_bytes) -> Kit:
    return Kit(tmp_path, image_bytes, dicom_bytes, nifti_bytes)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height over a tiny IDAT (a decompression-bomb header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def nifti_with(kit: Kit, volume: np.ndarray, patch: dict[int, bytes] | None = None, cut: int = 0) -> bytes:
    data = bytearray(kit.nifti(volume, np.eye(4)))
    for offset, raw in (patch or {}).items():
        data[offset : offset + len(raw)] = raw
    return bytes(data[: len(data) - cut])


def _fifo(kit: Kit) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    path = kit.tmp / "pipe.png"
    os.mkfifo(path)
    return path


def _folder(kit: Kit) -> Path:
    (kit.tmp / "scan.png").mkdir()
    return kit.tmp / "scan.png"


ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100)
Z16 = np.zeros((40, 40, 4), np.float32)

# id -> (build the file from a Kit, phrase the reason must contain)
CASES = {
    "missing": (lambda k: k.tmp / "nothing_here.jpg", "file not found"),
    "folder": (_folder, "is a folder"),
    "fifo": (_fifo, "not a regular file"),
    "empty": (lambda k: k.write("empty.jpg", b""), r"file is empty \(0 bytes\)"),
    "text": (lambda k: k.write("notes.jpg", b"patient scan notes\nline two\n"), "plain text"),
    "pdf": (lambda k: k.write("report.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), "PDF document"),
    "zip": (lambda k: k.write("scans.jpg", ZIP), "ZIP archive"),
    "html": (lambda k: k.write("download.jpg", b"<!DOCTYPE html><html><body>404</body></html>"), "HTML"),
    "random": (lambda k: k.write("noise.png", np.random.default_rng(1).bytes(4000)), "matches no supported format"),
    "gif": (lambda k: k.write("anim.png", k.image(Image.fromarray(GRAY), "GIF")), "GIF image, which is not supported"),
    "jpeg2000": (lambda k: k.write("x.jpg", k.image(Image.fromarray(GRAY), "JPEG2000")), "JPEG 2000"),
    "matlab": (lambda k: k.write("1.mat", b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + bytes(200)), "MATLAB"),
    "truncated_jpeg": (lambda k: k.write("cut.jpg", k.jpeg()[:-300]), "truncated JPEG"),
    "jpeg_without_eoi": (lambda k: k.write("noeoi.jpg", k.jpeg()[:-2]), "truncated JPEG"),
    "jpeg_cut_in_header": (lambda k: k.write("head.jpg", k.jpeg()[:150]), "truncated JPEG"),
    "corrupt_jpeg_header": (lambda k: k.write("bad.jpg", k.jpeg()[:4] + bytes(400)), "corrupt JPEG header"),
    "truncated_png": (lambda k: k.write("cut.png", k.png()[: len(k.png()) // 2]), "truncated PNG"),
    "png_without_iend": (lambda k: k.write("noend.png", k.png()[:-12]), "IEND chunk is missing"),
    "tiny_image": (lambda k: k.write("icon.png", k.image(Image.new("L", (16, 16)), "PNG")), "16x16 px; at least 32"),
    "thin_image": (lambda k: k.write("strip.png", k.image(Image.new("L", (400, 20)), "PNG")), "400x20 px"),
    "zero_width_png": (lambda k: k.write("zero.png", png_header_only(0, 100)), "zero-size dimension"),
    "bomb_over_pillow_limit": (lambda k: k.write("bomb.png", png_header_only(20000, 20000)), "100-megapixel limit"),
    "over_our_pixel_limit": (lambda k: k.write("big.png", png_header_only(11000, 10000)), "110 megapixels"),
    "nan_float_tiff": (
        lambda k: k.write("nan.tif", k.image(Image.fromarray(np.full((40, 40), np.nan, np.float32)), "TIFF")),
        "NaN or infinite",
    ),
    "unsupported_mode_lab": (lambda k: k.write("lab.tif", k.image(Image.new("LAB", (40, 40)), "TIFF")), "mode 'LAB'"),
    "dicom_no_pixel_data": (lambda k: k.write("sr.dcm", k.edit_dicom(PixelData=None)), "no pixel data"),
    "dicom_garbage_after_dicm": (
        lambda k: k.write("junk.dcm", bytes(128) + b"DICM" + np.random.default_rng(2).bytes(3000)),
        "corrupt DICOM",
    ),
    "dicom_truncated_pixels": (lambda k: k.write("cut.dcm", k.edit_dicom()[:-100]), "truncated DICOM pixel data"),
    "dicom_zero_rows": (lambda k: k.write("rows.dcm", k.edit_dicom(Rows=0)), "zero-size dimension"),
    "dicom_huge_frame_count": (lambda k: k.write("frames.dcm", k.edit_dicom(NumberOfFrames=10**6)), "M voxels"),
    "dicom_needs_plugin": (
        lambda k: k.write(
            "jls.dcm", k.edit_dicom(PixelData=encapsulate([b"\xff\xd8" + bytes(64)]), TransferSyntaxUID=JPEGLSLossless)
        ),
        r"needs a decoder plugin.*pip install pylibjpeg pylibjpeg-libjpeg",
    ),
    "dicom_unsupported_photometric": (
        lambda k: k.write("hsv.dcm", k.edit_dicom(PhotometricInterpretation="HSV")),
        "'HSV'",
    ),
    "nifti_truncated": (lambda k: k.write("cut.nii", nifti_with(k, Z16, cut=100)), "truncated NIfTI"),
    "nifti_zero_dim": (lambda k: k.write("zero.nii", nifti_with(k, Z16, {44: struct.pack("<h", 0)})), "zero-size"),
    "nifti_inf": (lambda k: k.write("inf.nii", nifti_with(k, Z16 + np.float32(np.inf))), "NaN or infinite"),
    "nifti_complex": (lambda k: k.write("c.nii", k.nifti(Z16.astype(np.complex64), np.eye(4))), "complex64"),
    "nifti_nan_affine": (
        lambda k: k.write(
            "aff.nii", nifti_with(k, Z16, {252: struct.pack("<hh", 0, 1), 280: struct.pack("<f", np.nan)})
        ),
        r"orientation \(affine\) is invalid",
    ),
    "nifti_bad_magic": (lambda k: k.write("bad.nii", np.random.default_rng(3).bytes(1000)), "header magic is missing"),
    "nifti_pair_header": (lambda k: k.write("v.nii", nifti_with(k, Z16, {344: b"ni1\x00"})), r"\.hdr/\.img"),
    "gzip_corrupt": (
        lambda k: k.write("v.nii.gz", (g := gzip.compress(nifti_with(k, Z16)))[:20] + bytes(40) + g[60:]),
        "corrupt or truncated gzip",
    ),
    "gzip_truncated": (lambda k: k.write("v.nii.gz", gzip.compress(nifti_with(k, Z16))[:-30]), "truncated gzip"),
    "gzip_not_nifti": (lambda k: k.write("v.nii.gz", gzip.compress(b"hello " * 200)), "does not contain a NIfTI"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file(kit, case):
    build, phrase = CASES[case]
    path = build(kit)
    with pytest.raises(ScanReadError) as err:
        read_scan(path)
    assert type(err.value) is ScanReadError
    assert isinstance(err.value, ValueError)
    assert err.value.source == str(path)
    assert str(path) in str(err.value)
    assert err.value.reason
    assert re.search(phrase, err.value.reason), err.value.reason


def test_bytes_input_uses_the_given_name(kit):
    with pytest.raises(ScanReadError, match=r"^upload\.jpg: truncated JPEG"):
        read_scan(kit.jpeg()[:-300], name="upload.jpg")
    with pytest.raises(ScanReadError, match=r"^<bytes>: file is empty"):
        read_scan(b"")


def test_deflate_bomb_is_refused(kit, monkeypatch):
    # A real bomb would need gigabytes of inflated output; a tiny limit exercises the same check.
    monkeypatch.setattr(dicom_module, "_INFLATE_LIMIT", 1000)
    path = kit.write("deflated.dcm", kit.edit_dicom(TransferSyntaxUID=DeflatedExplicitVRLittleEndian))
    with pytest.raises(ScanReadError, match="decompression bomb"):
        read_scan(path)


def test_deflated_dicom_within_the_limit_reads(kit):
    scan = read_scan(kit.write("deflated.dcm", kit.edit_dicom(TransferSyntaxUID=DeflatedExplicitVRLittleEndian)))
    assert scan.shape == (64, 64)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read files with mode 000")
def test_unreadable_file(kit):
    path = kit.write("locked.png", kit.png())
    path.chmod(0)
    try:
        with pytest.raises(ScanReadError, match="permission denied"):
            read_scan(path)
    finally:
        path.chmod(0o600)


def test_unreadable_file_simulated(kit, monkeypatch):
    """Runs as root too: the open() of the file fails the way it does for an unprivileged user."""
    path = kit.write("locked.png", kit.png())

    def deny(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(ScanReadError, match=r"locked\.png: permission denied"):
        read_scan(path)


def test_wrong_argument_types_are_programming_errors():
    with pytest.raises(TypeError):
        read_scan(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slices must be"):
        read_scan(b"not even read", slices="first")  # type: ignore[arg-type]
