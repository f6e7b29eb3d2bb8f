"""NIfTI volumes resliced in the axial, coronal and sagittal planes, optionally labelled by masks.

Each volume is reoriented to RAS+ (nibabel's closest canonical) and every kept slice is shown as a
radiologist reads it: axial from the feet (anterior up, patient's right on the left), coronal from the
front (superior up, patient's right on the left), sagittal from the patient's left (superior up,
anterior on the left). Slices are resampled to square pixels, so a volume of 5 mm slices gives coronal
and sagittal slices of the head's true shape.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from braintumor.data.sources.writer import ImportResult, SliceOptions, head_share, to_uint8
from braintumor.io.common import check_budget
from braintumor.io.source import walk_tree
from braintumor.io.types import ScanReadError

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}  # the RAS axis each plane's slices are taken along
_NIFTI = (".nii", ".nii.gz")
_SEQUENCE_WORDS = (  # file-name words, first match wins
    ("FLAIR", r"flair|fla\b|_fla_|tirm"),
    ("T1c", r"t1c|t1ce|t1gd|post|gad|\bgd\b|_gd_|contrast"),
    ("T2", r"t2"),
    ("T1", r"t1"),
)


def sequence_of(name: str) -> str:
    """The MRI sequence a file name states (T1, T1c, T2, FLAIR), or "other"."""
    low = name.lower()
    return next((seq for seq, pattern in _SEQUENCE_WORDS if re.search(pattern, low)), "other")


def import_volumes(
    root: str | Path,
    out: str | Path,
    options: SliceOptions | None = None,
    *,
    source: str,
    label: str | None = None,
    sequence: str | None = None,
    mask_suffix: str | None = None,
    planes: tuple[str, ...] = ("axial", "coronal", "sagittal"),
    progress: bool = True,
) -> ImportResult:
    """Slice every NIfTI volume below `root` (see the module doc) into `out`.

    Args:
        label: the class of every slice when there are no masks (e.g. "notumor" for healthy subjects).
        sequence: the sequence of every volume; None reads it from each file name (`sequence_of`).
        mask_suffix: masks are the volumes' files with this before the extension (e.g. "_seg"); a slice is
            then labelled by its mask area as in `SliceOptions.label`.
        planes: which of "axial", "coronal", "sagittal".

    A 4-D volume, one with NaN or infinite values, one too large, or a mask of another shape is reported
    by name in the result and skipped; the others go on.
    """
    options = options or SliceOptions()
    unknown = sorted(set(planes) - set(PLANES))
    if unknown or not planes:
        raise ValueError(f"planes must be among {', '.join(PLANES)}, not {unknown or 'none'}")
    if label is None and mask_suffix is None:
        raise ValueError("give --label CLASS for volumes without masks, or --mask-suffix to label slices by masks")
    result = ImportResult(Path(out))
    files = sorted(p for p in walk_tree(root) if p.name.lower().endswith(_NIFTI))
    volumes = [p for p in files if not (mask_suffix and _stem(p).endswith(mask_suffix))]
    if not volumes:
        raise FileNotFoundError(f"{root}: no NIfTI volumes (.nii, .nii.gz)")
    for path in tqdm(volumes, desc="volumes", unit="volume", disable=not progress):
        try:
            data, zooms = _canonical(path)
            mask = _mask_of(path, mask_suffix, data.shape) if mask_suffix else None
        except (OSError, ValueError, ScanReadError) as exc:
            result.problem(path, str(exc))
            continue
        seq = sequence or sequence_of(path.name)
        patient = _stem(path).split("_")[0]
        low, high = np.percentile(data[data > 0] if (data > 0).any() else data, (0.5, 99.5))
        for plane in planes:
            ids = (source, patient, seq, _stem(path))
            _write_plane(result, options, data, mask, zooms, plane, (low, high), ids, label)
    return result.write()


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def _canonical(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The volume in RAS+ orientation as float32, and its voxel size in mm."""
    import nibabel as nib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises many types for a damaged file
            raise ValueError(f"not a readable NIfTI volume ({type(exc).__name__}: {str(exc)[:100]})") from None
        if len(img.shape) != 3:
            raise ValueError(f"a {len(img.shape)}-D volume (shape {img.shape}); give one 3-D volume per file")
        check_budget(str(path), int(np.prod(img.shape)) * 8, "slicing this volume")
        canonical = nib.as_closest_canonical(img)
        data = canonical.get_fdata(dtype=np.float32)
    if not np.isfinite(data).all():
        raise ValueError("the volume holds NaN or infinite values")
    return data, tuple(float(z) for z in canonical.header.get_zooms()[:3])


def _mask_of(path: Path, suffix: str, shape: tuple[int, ...]) -> np.ndarray:
    name = _stem(path) + suffix + path.name[len(_stem(path)) :]
    mask_path = path.with_name(name)
    if not mask_path.is_file():
        raise ValueError(f"its mask {mask_path.name} is missing")
    mask, _ = _canonical(mask_path)
    if mask.shape != shape:
        raise ValueError(f"its mask {mask_path.name} has shape {mask.shape}, the volume {shape}: inconsistent")
    return mask > 0


def _display(plane_slice: np.ndarray) -> np.ndarray:
    """A RAS slice turned the way it is read (see the module doc).

    The slice's second axis (A for axial, S for the others) becomes rows with the larger value on top, its
    first (R-L for axial and coronal, A-P for sagittal) columns with the larger value on the left.
    """
    return plane_slice.T[::-1, ::-1]


def _square_pixels(pixels: np.ndarray, row_mm: float, col_mm: float, nearest: bool = False) -> np.ndarray:
    if abs(row_mm - col_mm) < 1e-3:
        return pixels
    mm = min(row_mm, col_mm)
    size = (round(pixels.shape[1] * col_mm / mm), round(pixels.shape[0] * row_mm / mm))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def _write_plane(result, options, data, mask, zooms, plane, window, ids, label) -> None:
    source, patient, seq, series = ids
    axis = PLANES[plane]
    normal_seen = 0
    col_axis, row_axis = [a for a in range(3) if a != axis]  # before the transpose: x/y, x/z or y/z
    for k in range(data.shape[axis]):
        if k % options.every:
            result.skip("between the slices kept (--every)")
            continue
        area = None if mask is None else int(np.take(mask, k, axis=axis).sum())
        slice_label = options.label(area, default=label)
        if slice_label is None:
            result.skip(f"tumour under {options.min_tumour_px} px")
            continue
        if area == 0:  # a tumour-free slice of a masked series (a series without masks is all one class)
            normal_seen += 1
            if (normal_seen - 1) % options.normal_every:
                result.skip("tumour-free, between those kept (--normal-every)")
                continue
        pixels = _display(np.take(data, k, axis=axis))
        if head_share(pixels) < options.min_head:
            result.skip("little head")
            continue
        pixels = _square_pixels(to_uint8(pixels, *window), zooms[row_axis], zooms[col_axis])
        result.add(
            pixels,
            source=source,
            patient=patient,
            sequence=seq,
            plane=plane,
            index=k,
            tumour_area=area,
            label=slice_label,
            series=series,
        )
