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

from braintumor.io.common import (
    MAX_FILE_BYTES,
    SliceChoice,
    check_budget,
    check_plane,
    check_volume,
    pick_indices,
)
from braintumor.io.sniff import nifti_version
from braintumor.io.types import Scan, ScanReadError

_HEAD = 540  # bytes: enough for a NIfTI-2 header, more than a NIfTI-1 one (348)
_CHUNK = 2**24  # bytes decompressed at a time while checking a .nii.gz


def decode_nifti(data: bytes, label: str, which: SliceChoice) -> list[Scan]:
    """Decode the selected axial slice(s) of a .nii or gzip-compressed .nii.gz file.

    One slice is read lazily (nibabel's array proxy reads just its bytes, decompressing a .nii.gz as a
    stream), so a large or hostile volume costs the memory of one slice; all slices cost the volume,
    within `MEMORY_BUDGET`.

    Raises:
        ScanReadError: corrupt or truncated header, data or gzip stream; NaN/inf values; limits broken.
    """
    # nibabel and numpy warn about odd headers they then fix or reject; our checks report those.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _decode(_open(data, label), label, which)
        except ScanReadError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise ScanReadError(label, f"corrupt or truncated gzip data ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # the boundary: no nibabel/numpy exception type escapes
            raise ScanReadError(label, f"corrupt NIfTI file ({type(exc).__name__}: {str(exc)[:120]})") from exc


def _open(data: bytes, label: str) -> Any:
    """The NIfTI image with its data left in the file (an array proxy), after the header and size checks."""
    if data[:2] != b"\x1f\x8b":
        need = _required_bytes(data[:_HEAD], label)
        if len(data) < need:
            raise ScanReadError(
                label, f"truncated NIfTI file: the header promises {need} bytes, the data has {len(data)}"
            )
        return _header_class(nifti_version(data)).from_bytes(data)
    head = _check_gzip(data, label)
    stream = gzip.GzipFile(fileobj=io.BytesIO(data))  # seeks by decompressing: memory stays one buffer
    cls = _header_class(nifti_version(head))
    return cls.from_file_map(cls.make_file_map({"image": stream, "header": stream}))


def _check_gzip(data: bytes, label: str) -> bytes:
    """Stream through the compressed data, keeping nothing, to find a truncated or damaged file up front.

    Only as many bytes as the header promises are decompressed (a gzip bomb stops there); one byte beyond
    them reaches the end of the stream, so gzip also verifies its CRC. Returns the header bytes.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            head = gz.read(_HEAD)
            if not nifti_version(head):
                raise ScanReadError(label, "gzip-compressed file that does not contain a NIfTI volume")
            need, got = _required_bytes(head, label), len(head)
            while got <= need:
                chunk = gz.read(min(_CHUNK, need + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ScanReadError(label, f"corrupt or truncated gzip data ({type(exc).__name__}: {exc})") from None
    if got < need:
        raise ScanReadError(label, f"truncated NIfTI file: the header promises {need} bytes, the data has {got}")
    return head


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


def _decode(img: Any, label: str, which: SliceChoice) -> list[Scan]:
    import nibabel as nib

    volume = _first_volume(img)
    try:
        ornt = nib.io_orientation(volume.affine)  # per stored axis: the RAS axis it runs along, and its sense
    except Exception:
        raise ScanReadError(label, "NIfTI orientation (affine) is invalid; cannot find the axial plane") from None
    axis = int(np.flatnonzero(ornt[:, 0] == 2)[0])  # the stored axis that runs inferior-superior
    nx, ny, nz = (volume.shape[int(np.flatnonzero(ornt[:, 0] == j)[0])] for j in range(3))
    check_plane(label, nx, ny)
    itemsize = volume.get_data_dtype().itemsize
    if which == "all":
        check_budget(label, nx * ny * nz * (itemsize + 4), "decoding every slice of this NIfTI volume")
        canonical = nib.as_closest_canonical(volume)
        indices, planes = pick_indices(label, nz, which), None
    else:
        k = pick_indices(label, nz, which)[0]
        stored = k if ornt[axis, 1] > 0 else nz - 1 - k
        # the last stored axis is one contiguous slab; a slice across another axis may read the whole volume
        cost = nx * ny * (itemsize + 8) if axis == 2 else nx * ny * nz * itemsize
        check_budget(label, cost, "reading one slice of this NIfTI volume")
        one = tuple(slice(stored, stored + 1) if i == axis else slice(None) for i in range(3))
        canonical = nib.as_closest_canonical(volume.slicer[one])
        indices, planes = [k], [0]
    extra = {
        "stored_orientation": "".join(str(c) for c in nib.aff2axcodes(img.affine)),
        "volume_shape": (nx, ny, nz),
        "nifti_version": 1 if isinstance(img, nib.Nifti1Image) else 2,
    }
    spacing = _spacing(canonical.header.get_zooms())
    scans = []
    for k, plane in zip(indices, planes or indices, strict=True):
        pixels = np.asarray(canonical.dataobj[:, :, plane], dtype=np.float32)
        if not np.isfinite(pixels).all():
            raise ScanReadError(label, "NIfTI volume contains NaN or infinite values")
        scans.append(
            Scan(
                pixels=np.ascontiguousarray(pixels.T[::-1, ::-1]),  # radiological display, see module doc
                source=label,
                format="nifti",
                mode="volume",
                slice_index=k,
                num_slices=nz,
                spacing=spacing,
                extra=extra,
            )
        )
    return scans


def _first_volume(img: Any) -> Any:
    """The first 3-D volume, as an image nibabel can reorient (2-D data becomes one slice); data left in the file."""
    if img.ndim == 2:
        return type(img)(np.asanyarray(img.dataobj)[:, :, None], img.affine)
    if img.ndim == 3:
        return img
    return img.slicer[(slice(None),) * 3 + (0,) * (img.ndim - 3)]


def _spacing(zooms: tuple[float, ...]) -> tuple[float, float] | None:
    """(row, column) spacing in mm: rows follow y and columns follow x after the transpose."""
    row, col = float(zooms[1]), float(zooms[0])
    return (row, col) if np.isfinite([row, col]).all() and row > 0 and col > 0 else None
