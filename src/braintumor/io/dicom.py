"""Decode DICOM files with pydicom; frames of a multi-frame file are slices.

Privacy: DICOM headers hold patient data. Nothing from the header is logged, put into an
error message or into Scan.extra except the technical fields listed in `_technical_extra`.
pydicom's warnings and log records can quote header values, so both are dropped while we
decode (log records through a filter keyed on a context variable, so other threads and other
pydicom users keep their logs), and its exception messages are reduced to their type name.

pydicom is imported lazily: most callers only ever read JPEGs and should not pay its import time.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zlib
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from braintumor.io.common import MEMORY_BUDGET, SliceChoice, check_budget, check_plane, check_volume, pick_indices
from braintumor.io.dicom_pixels import frame_to_unit
from braintumor.io.types import Scan, ScanReadError

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DEFLATED = b"1.2.840.10008.1.2.1.99"
_INFLATE_LIMIT = MEMORY_BUDGET  # a deflated dataset is inflated whole, before any frame is decoded
_WORK_BYTES = 24  # per pixel of the frame being decoded: stored values and pydicom's float64 copies
_DECODING: ContextVar[bool] = ContextVar("braintumor_dicom_decoding", default=False)


class _MuteWhileDecoding(logging.Filter):
    """Drops pydicom log records emitted inside decode_dicom (they can quote header values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _DECODING.get()


_MUTE = _MuteWhileDecoding()


def decode_dicom(data: bytes, label: str, which: SliceChoice) -> list[Scan]:
    """Decode the selected frame(s) of a DICOM file into float32 slices in [0, 1].

    Raises:
        ScanReadError: corrupt file, no pixel data, missing decoder plugin, limits broken.
    """
    import pydicom.pixels  # noqa: F401 -- creates pydicom's loggers before they are muted

    _mute_pydicom_logs()
    token = _DECODING.set(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings may quote header values (patient data)
            return _decode(_parse(data, label), label, which)
    except ScanReadError:
        raise
    except Exception as exc:  # the boundary; the message is dropped because it may quote header values
        raise ScanReadError(label, f"corrupt DICOM pixel data or image module ({type(exc).__name__})") from None
    finally:
        _DECODING.reset(token)


def _mute_pydicom_logs() -> None:
    """Attach the filter to every pydicom logger (child loggers do not inherit parent filters)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "pydicom" or name.startswith("pydicom."):
            logger = logging.getLogger(name)
            if _MUTE not in logger.filters:
                logger.addFilter(_MUTE)


def _parse(data: bytes, label: str) -> Dataset:
    from pydicom import dcmread

    _refuse_deflate_bomb(data, label)
    try:
        ds = dcmread(io.BytesIO(data), force=True)
        ds.get("Rows")  # elements are parsed lazily; touch one so header damage shows here
    except Exception as exc:
        raise ScanReadError(label, f"corrupt DICOM file: the header cannot be parsed ({type(exc).__name__})") from None
    if not any(tag in ds for tag in _PIXEL_TAGS):
        meta = getattr(ds, "file_meta", None) or {}
        if "SOPClassUID" not in ds and "MediaStorageSOPClassUID" not in meta:
            raise ScanReadError(label, "corrupt DICOM file: no DICOM elements could be read")
        raise ScanReadError(
            label, "DICOM file has no pixel data (a report, presentation state, DICOMDIR or damaged file)"
        )
    _set_transfer_syntax(ds)
    return ds


def _decode(ds: Dataset, label: str, which: SliceChoice) -> list[Scan]:
    rows, cols, frames = _dimensions(ds, label)
    check_plane(label, cols, rows)
    samples = int(ds.get("SamplesPerPixel") or 1)
    check_volume(label, (frames, rows, cols, samples))
    count = len(pick_indices(label, frames, which))
    # per decoded frame: the stored values, float64 working copies (LUT, window), the float32 output
    check_budget(label, rows * cols * samples * (_WORK_BYTES + 4 * count), "decoding this DICOM")
    _require_decoder(ds, label)
    _check_length(ds, label)
    extra, spacing = _technical_extra(ds, frames), _spacing(ds)
    scans = []
    for index in pick_indices(label, frames, which):
        pixels, how = _decoded_frame(ds, index, label)
        scans.append(
            Scan(
                pixels=pixels,
                source=label,
                format="dicom",
                mode=extra["photometric_interpretation"],
                slice_index=index if frames > 1 else None,
                num_slices=frames,
                spacing=spacing,
                extra={**extra, "intensity": how},
            )
        )
    return scans


def _dimensions(ds: Dataset, label: str) -> tuple[int, int, int]:
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if rows is None or cols is None:
        raise ScanReadError(label, "DICOM image module is incomplete: Rows or Columns is missing")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames < 1:
        raise ScanReadError(label, f"DICOM image has a zero-size dimension ({frames} frames)")
    return int(rows), int(cols), frames


def _set_transfer_syntax(ds: Dataset) -> None:
    """A file without file meta (preamble-less or bare dataset) gets the encoding it was read with."""
    from pydicom import uid
    from pydicom.dataset import FileMetaDataset

    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        syntax = uid.ImplicitVRLittleEndian
    else:
        syntax = uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax


def _require_decoder(ds: Dataset, label: str) -> None:
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ScanReadError(label, f"DICOM transfer syntax '{syntax.name}' is not supported") from None
    if not decoder.is_available:
        commands = [_pip_command(dep) for dep in decoder.missing_dependencies]
        raise ScanReadError(
            label,
            f"compressed DICOM ({syntax.name}) needs a decoder plugin that is not installed; "
            f"install one of: {' | '.join(commands)}",
        )


def _decoded_frame(ds: Dataset, index: int, label: str) -> tuple[np.ndarray, str]:
    """frame_to_unit, saying which plugins to add when the installed ones cannot decode this variant.

    An installed plugin may still refuse part of a syntax (Pillow decodes 8-bit JPEG Extended, not
    12-bit); pydicom then raises RuntimeError. Its message names only plugins and bit depths.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        return frame_to_unit(ds, index, label)
    except RuntimeError:
        if not syntax.is_compressed:
            raise
        from pydicom.pixels import get_decoder

        decoder = get_decoder(syntax)
        tried = ", ".join(decoder.available_plugins) or "none"
        others = [_pip_command(dep) for dep in decoder.missing_dependencies]
        hint = f"; another plugin may: {' | '.join(others)}" if others else ""
        raise ScanReadError(
            label,
            f"compressed DICOM ({syntax.name}, {ds.get('BitsStored', '?')}-bit) cannot be decoded by the "
            f"installed plugin(s) ({tried}){hint}",
        ) from None


def _pip_command(dependency: str) -> str:
    """'pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1' -> 'pip install pylibjpeg pylibjpeg-libjpeg'."""
    needs = dependency.split("requires", 1)[-1]
    names = [re.split(r"[<>=!~ ]", part.strip(), maxsplit=1)[0] for part in needs.split(" and ")]
    names = ["python-gdcm" if n == "gdcm" else n for n in names if n and n != "numpy"]
    return "pip install " + " ".join(names)


def _check_length(ds: Dataset, label: str) -> None:
    """Native (uncompressed) pixel data must hold every frame the header promises."""
    from pydicom.pixels.utils import get_expected_length

    if ds.file_meta.TransferSyntaxUID.is_encapsulated or "PixelData" not in ds:
        return
    expected, actual = get_expected_length(ds, "bytes"), len(ds.PixelData)
    if actual < expected:
        raise ScanReadError(label, f"truncated DICOM pixel data: {actual} of {expected} bytes present")


def _refuse_deflate_bomb(data: bytes, label: str) -> None:
    """Deflated DICOM is inflated whole by pydicom: bound the inflated size first."""
    head = data[:4096]
    if _DEFLATED not in head:
        return
    start = 132 if data[128:132] == b"DICM" else 0
    if data[start : start + 6] != b"\x02\x00\x00\x00UL":
        raise ScanReadError(label, "corrupt DICOM file: deflated dataset without a file meta group length")
    body = start + 12 + struct.unpack_from("<I", data, start + 8)[0]
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        chunk = inflater.decompress(data[body:], 2**24)
        while chunk:
            total += len(chunk)
            if total > _INFLATE_LIMIT:
                raise ScanReadError(label, "deflated DICOM inflates beyond the size limit (decompression bomb?)")
            chunk = inflater.decompress(inflater.unconsumed_tail, 2**24)
    except zlib.error:
        raise ScanReadError(label, "corrupt DICOM file: the deflated dataset cannot be inflated") from None


def _technical_extra(ds: Dataset, frames: int) -> dict[str, Any]:
    """Non-identifying technical fields only (see the module docstring)."""
    return {
        # Code strings (VR CS, at most 16 characters by the standard); cut so a misused field cannot carry more.
        "modality": str(ds.get("Modality") or "")[:16],
        "photometric_interpretation": str(ds.get("PhotometricInterpretation") or "").strip().upper()[:16],
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_stored": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0),
        "number_of_frames": frames,
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID.name),
    }


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm from Pixel Spacing or the enhanced-MR shared functional groups."""
    try:  # spacing is optional: a malformed value means "unknown", not an unreadable file
        value = ds.get("PixelSpacing")
        shared = ds.get("SharedFunctionalGroupsSequence")
        if value is None and shared:
            value = shared[0].PixelMeasuresSequence[0].PixelSpacing
        row, col = (float(v) for v in value)
    except Exception:
        return None
    return (row, col) if row > 0 and col > 0 else None
