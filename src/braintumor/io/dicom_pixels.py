"""DICOM pixel values -> float32 in [0, 1]: modality LUT, VOI LUT or window, MONOCHROME1 inversion.

Grayscale pipeline (DICOM PS3.3 C.11): stored values -> Modality LUT or Rescale Slope/Intercept
-> VOI LUT Sequence, else Window Center/Width, else min-max over the frame -> inverted for
MONOCHROME1 (where low values are white). Enhanced multi-frame files keep these attributes in
shared and per-frame functional groups; a per-frame value overrides a shared one, which
overrides the top-level one. Colour frames become ITU-R 601-2 luma scaled by their bit depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from braintumor.io.common import check_finite
from braintumor.io.types import ScanReadError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_MONO = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_LUMA = np.array([0.299, 0.587, 0.114])
_TRANSFORM_KEYS = (
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
)  # fmt: skip


def frame_to_unit(ds: Dataset, index: int, label: str) -> tuple[np.ndarray, str]:
    """Decode frame `index` and map it to float32 in [0, 1].

    Returns:
        The 2-D pixels and how intensities were mapped: "voi-lut", "window", "min-max" or "colour".

    Raises:
        ScanReadError: an unsupported photometric interpretation, or NaN/infinite values.
    """
    from pydicom.pixels import pixel_array

    arr = pixel_array(ds, index=index)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric in _MONO:
        out, how = _monochrome(arr, _frame_transforms(ds, index), label)
        if photometric == "MONOCHROME1":
            out = 1.0 - out
    elif photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds)
        out, how = rgb @ _LUMA / np.iinfo(rgb.dtype).max, "colour"
    elif photometric in _COLOUR and arr.ndim == 3:
        out, how = arr @ _LUMA / (2 ** int(ds.BitsStored) - 1), "colour"
    else:
        raise ScanReadError(label, f"DICOM photometric interpretation {photometric[:16]!r} is not supported")
    check_finite(label, out)  # whatever a lookup table or colour map made of the values
    return np.clip(out, 0.0, 1.0).astype(np.float32), how


def _frame_transforms(ds: Dataset, index: int) -> Dataset:
    """A small dataset holding only the modality/VOI attributes that apply to frame `index`."""
    from pydicom.dataset import Dataset

    out = Dataset()
    for key in ("PhotometricInterpretation", "BitsStored", "PixelRepresentation"):
        if key in ds:
            out.add(ds[key])
    sources = [ds]
    for groups, i in (("SharedFunctionalGroupsSequence", 0), ("PerFrameFunctionalGroupsSequence", index)):
        seq = ds.get(groups)
        if seq and i < len(seq):
            for name in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
                if seq[i].get(name):
                    sources.append(seq[i][name][0])
    for source in sources:
        for key in _TRANSFORM_KEYS:
            if key in source:
                out.add(source[key])
    return out


def _monochrome(arr: np.ndarray, tf: Dataset, label: str) -> tuple[np.ndarray, str]:
    from pydicom.pixels import apply_modality_lut, apply_voi

    values = apply_modality_lut(arr, tf).astype(np.float64)
    check_finite(label, values)
    if tf.get("VOILUTSequence"):
        bits = max(1, int(tf.VOILUTSequence[0].LUTDescriptor[2]))
        return apply_voi(values, tf) / (2**bits - 1), "voi-lut"
    if "WindowCenter" in tf and "WindowWidth" in tf:
        windowed = _window(values, tf)
        if windowed is not None:
            return windowed, "window"
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:  # a constant frame is a valid (blank) image, not an error
        return np.zeros_like(values), "min-max"
    return (values - lo) / (hi - lo), "min-max"


def _window(values: np.ndarray, tf: Dataset) -> np.ndarray | None:
    """pydicom's windowing (LINEAR, LINEAR_EXACT or SIGMOID) straight into [0, 1], or None if invalid.

    pydicom scales the window output to the range of the stored bit depth; handing it an
    unsigned 1-bit description makes that range exactly [0, 1].
    """
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing

    unit = Dataset()
    unit.PhotometricInterpretation = "MONOCHROME2"
    unit.PixelRepresentation = 0
    unit.BitsStored = 1
    for key in ("WindowCenter", "WindowWidth", "VOILUTFunction"):
        if key in tf:
            unit.add(tf[key])
    # a centre or width of "nan" or "inf" (seen in exports) windows every pixel to NaN or to one value
    if not all(np.isfinite(_numbers(unit[key].value)).all() for key in ("WindowCenter", "WindowWidth")):
        return None
    try:
        return apply_windowing(values, unit)
    except (ValueError, TypeError):  # e.g. width < 1: fall back to min-max rather than refuse the scan
        return None


def _numbers(value: object) -> np.ndarray:
    """A DICOM decimal string value (one or several) as floats; text that is no number becomes NaN."""
    items = value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else [value]
    try:
        return np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([np.nan])
