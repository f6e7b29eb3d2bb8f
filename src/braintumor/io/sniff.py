"""Detect a file's format from its first bytes (content sniffing); the name is only a hint.

`sniff` returns one of "jpeg", "png", "bmp", "tiff", "webp", "dicom", "nifti" or "gzip", or
raises ScanReadError saying what the content looks like (a PDF, a web page, a GIF...) so the
user learns why it was refused.
"""

from __future__ import annotations

import struct

from braintumor.io.types import ScanReadError

NOT_A_SCAN = "not an image or DICOM/NIfTI file"
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

# Formats we refuse on purpose, each with the hint a user needs.
_UNSUPPORTED = (
    (b"GIF8", "a GIF image, which is not supported; convert it to PNG"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image, which is not supported; convert it to PNG"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream, which is not supported; convert it to PNG"),
    (b"%PDF", f"a PDF document, {NOT_A_SCAN}"),
    (b"PK\x03\x04", f"a ZIP archive, {NOT_A_SCAN}; unpack it first"),
    (b"MATLAB 5.0 MAT-file", f"a MATLAB .mat file, {NOT_A_SCAN}; export its images first"),
    (b"\x89HDF\r\n\x1a\n", f"an HDF5 (or MATLAB v7.3 .mat) file, {NOT_A_SCAN}"),
    (b"Rar!", f"a RAR archive, {NOT_A_SCAN}"),
    (b"7z\xbc\xaf\x27\x1c", f"a 7-Zip archive, {NOT_A_SCAN}"),
)
# Groups a preamble-less stream starts with: file meta, then identification, patient, acquisition,
# relationship and image-pixel modules (a bare dataset may hold only the last).
_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x10\x00", b"\x18\x00", b"\x20\x00", b"\x28\x00")
_DIB_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
_DICOM_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
    b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
    b"UR", b"US", b"UT", b"UV",
}  # fmt: skip


def sniff(data: bytes, label: str) -> str:
    """Return the scan format of `data`; `label` (file name) is used as a hint and in errors.

    Raises:
        ScanReadError: the content is not a supported image, DICOM or NIfTI file.
    """
    # DICOM first: its 128-byte preamble is free for other use, and dual-personality files put a TIFF
    # header there (PS3.10 section 7.1), so the bytes at offset 0 can look like an image.
    kind = _medical_kind(data) or _image_kind(data)
    if kind:
        return kind
    if label.lower().endswith(DICOM_SUFFIXES) and not _looks_like_text(data[:512]):
        return "dicom"  # a DICOM dataset whose first tag we do not recognise: let pydicom judge it
    raise ScanReadError(label, _describe(data, label))


def _image_kind(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    # "BM" alone is too weak (text can start with it): also require a known DIB header size.
    if data[:2] == b"BM" and len(data) >= 18 and struct.unpack_from("<I", data, 14)[0] in _DIB_HEADER_SIZES:
        return "bmp"
    return None


def _medical_kind(data: bytes) -> str | None:
    if data[128:132] == b"DICM" or _preambleless_dicom(data):
        return "dicom"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if nifti_version(data):
        return "nifti"
    return None


def nifti_version(data: bytes) -> int:
    """1 or 2 for a single-file NIfTI-1/NIfTI-2 header (.nii), else 0."""
    if len(data) >= 348 and data[344:348] == b"n+1\x00" and _header_size(data) == 348:
        return 1
    if len(data) >= 540 and data[4:8] == b"n+2\x00" and _header_size(data) == 540:
        return 2
    return 0


def _header_size(data: bytes) -> int:
    little, big = struct.unpack_from("<i", data)[0], struct.unpack_from(">i", data)[0]
    return little if little in (348, 540) else big


def _preambleless_dicom(data: bytes) -> bool:
    """A DICOM stream written without the 128-byte preamble starts with a low, even group tag."""
    if len(data) < 8 or data[:2] not in _FIRST_GROUPS:
        return False
    element = struct.unpack_from("<H", data, 2)[0]
    if data[4:6] in _DICOM_VRS:  # explicit VR
        return element < 0x0100
    length = struct.unpack_from("<I", data, 4)[0]  # implicit VR: a plausible value length
    return element < 0x0100 and length < len(data)


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut in half by the 512-byte window
            return False
        text = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\r\n\t\f" for ch in text)


def _describe(data: bytes, label: str) -> str:
    """Say what unrecognised content looks like, for the error message."""
    for magic, what in _UNSUPPORTED:
        if data.startswith(magic):
            return f"the file is {what}"
    if data[:348][344:348] == b"ni1\x00":
        return "a NIfTI header/image pair (.hdr/.img) is not supported; convert it to a single .nii file"
    if data[4:8] == b"ftyp":
        return f"the file is an ISO media file (HEIC, AVIF or video), {NOT_A_SCAN}"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<svg", b"<head", b"<body")):
        return f"the file is an HTML/XML document (a web page saved in place of the image?), {NOT_A_SCAN}"
    if _looks_like_text(data[:512]):
        return f"the file is plain text, {NOT_A_SCAN}"
    if label.lower().endswith((".nii", ".nii.gz")):
        return "corrupt NIfTI file: the NIfTI-1/NIfTI-2 header magic is missing"
    return f"{NOT_A_SCAN}: its content matches no supported format"
