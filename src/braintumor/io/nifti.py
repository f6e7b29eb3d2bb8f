"""Decode NIfTI-1/NIfTI-2 volumes (.nii, .nii.gz) with nibabel into axial slices for display.

Orientation: the volume is first reoriented with `nib.as_closest_canonical` to RAS+ (first axis
increasing towards the patient's Right, second towards Anterior, third towards Superior).
Axial slice k is then `data[:, :, k]`, indexed [x, y]; slice 0 is the most inferior. It is shown
the way radiologists read axial images, as if looking up from the patient's feet: anterior at
the top and the patient's right on the image's left. So rows run anterior -> posterior
(y descending) and columns right -> left (x descending): `pixels = data[:, :, k].T[::-1, ::-1]`.

A 4-D (or higher) file contributes its first volume only. Values are the stored values after
the header's scl_slope/scl_inter, as float32 (not normalised: `Scan.as_float01` min-maxes them).
nibabel is imported lazily, like pydicom.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from typing import Any

import numpy as np

from braintumor.io.common import MAX_FILE_BYTES, SliceChoice, check_plane, check_volume, pick_indices
from braintumor.io.sniff import nifti_version
from braintumor.io.types import Scan, ScanReadError

_HEAD = 540  # bytes: enough for a NIfTI-2 header, more than a NIfTI-1 one (348)


def decode_nifti(data: bytes, label: str, which: SliceChoice) -> list[Scan]:
    """Decode the selected axial slice(s) of a .nii or gzip-compressed .nii.gz file.

    Raises:
        ScanReadError: corrupt or truncated header, data or gzip stream; NaN/inf values; limits broken.
    """
    # nibabel and numpy warn about odd headers they then fix or reject; our checks report those.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raw = _gunzip(data, label) if data[:2] == b"\x1f\x8b" else data
            return _decode(raw, label, which)
        except ScanReadError:
            raise
        except Exception as exc:  # the boundary: no nibabel/numpy exception type escapes
            raise ScanReadError(label, f"corrupt NIfTI file ({type(exc).__name__}: {str(exc)[:120]})") from exc


def _gunzip(data: bytes, label: str) -> bytes:
    """Decompress only as many bytes as the NIfTI header says the file holds (a gzip bomb stops there)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            head = gz.read(_HEAD)
            if not nifti_version(head):
                raise ScanReadError(label, "gzip-compressed file that does not contain a NIfTI volume")
            need = _required_bytes(head, label)
            # One byte beyond `need` reaches the end of the stream, so gzip also verifies its CRC.
            return head + gz.read(max(0, need + 1 - len(head)))
    except (OSError, EOFError, zlib.error) as exc:
        raise ScanReadError(label, f"corrupt or truncated gzip data ({type(exc).__name__}: {exc})") from None


def _header_class(version: int) -> Any:
    import nibabel as nib

    return nib.Nifti1Image if version == 1 else nib.Nifti2Image


def _required_bytes(head: bytes, label: str) -> int:
    """Check the header's shape, data type and limits; return the file size it implies."""
    version = nifti_version(head)
    if not version:
        raise ScanReadError(label, "corrupt NIfTI file: the NIfTI-1/NIfTI-2 header magic is missing")
    try:
        hdr = _header_class(version).header_class.from_fileobj(io.BytesIO(head))
        shape, dtype = tuple(int(n) for n in hdr.get_data_shape()), hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
    except Exception as exc:
        raise ScanReadError(label, f"corrupt NIfTI header ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(shape) < 2:
        raise ScanReadError(label, f"NIfTI data has shape {shape}; at least 2 dimensions needed")
    if dtype.kind not in "biuf":
        raise ScanReadError(label, f"NIfTI data type {dtype} is not supported (only real-valued scalars)")
    check_volume(label, shape)  # zero-size axes anywhere
    check_volume(label, shape[:3])  # voxel limit on the one volume that is decoded
    need = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > MAX_FILE_BYTES:
        raise ScanReadError(label, f"NIfTI header promises {need / 2**30:.1f} GiB of data, over the limit")
    return need


def _decode(raw: bytes, label: str, which: SliceChoice) -> list[Scan]:
    import nibabel as nib

    need = _required_bytes(raw[:_HEAD], label)
    if len(raw) < need:
        raise ScanReadError(label, f"truncated NIfTI file: the header promises {need} bytes, the data has {len(raw)}")
    img = _header_class(nifti_version(raw)).from_bytes(raw)
    volume = _first_volume(img)
    try:
        canonical = nib.as_closest_canonical(volume)
    except Exception:
        raise ScanReadError(label, "NIfTI orientation (affine) is invalid; cannot find the axial plane") from None
    nx, ny, nz = canonical.shape
    check_plane(label, nx, ny)
    data = canonical.get_fdata(dtype=np.float32)
    if not np.isfinite(data).all():
        raise ScanReadError(label, "NIfTI volume contains NaN or infinite values")
    zooms = canonical.header.get_zooms()
    extra = {
        "stored_orientation": "".join(str(c) for c in nib.aff2axcodes(img.affine)),
        "volume_shape": (nx, ny, nz),
        "nifti_version": nifti_version(raw),
    }
    return [
        Scan(
            pixels=np.ascontiguousarray(data[:, :, k].T[::-1, ::-1]),  # radiological display, see module doc
            source=label,
            format="nifti",
            mode="volume",
            slice_index=k,
            num_slices=nz,
            spacing=_spacing(zooms),
            extra=extra,
        )
        for k in pick_indices(label, nz, which)
    ]


def _first_volume(img: Any) -> Any:
    """The first 3-D volume, as an image nibabel can reorient (2-D data becomes one slice)."""
    if img.ndim == 2:
        return type(img)(np.asanyarray(img.dataobj)[:, :, None], img.affine)
    if img.ndim == 3:
        return img
    return img.slicer[(slice(None),) * 3 + (0,) * (img.ndim - 3)]


def _spacing(zooms: tuple[float, ...]) -> tuple[float, float] | None:
    """(row, column) spacing in mm: rows follow y and columns follow x after the transpose."""
    row, col = float(zooms[1]), float(zooms[0])
    return (row, col) if np.isfinite([row, col]).all() and row > 0 and col > 0 else None
