"""Decode JPEG, PNG, BMP, TIFF and WEBP with Pillow into 2-D grayscale arrays.

Output dtypes: uint8 for 8-bit and colour modes (colour -> ITU-R 601-2 luma, Pillow's "L"),
uint16 for 16-bit modes (full precision kept), float32 for "I" (32-bit int) and "F".
48-bit RGB PNGs are reduced to 8 bits per channel by Pillow itself.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from braintumor.io.common import MAX_PIXELS, SliceChoice, check_budget, check_finite, check_plane, pick_indices
from braintumor.io.types import Scan, ScanReadError

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tiff": "TIFF", "webp": "WEBP"}
_GRAY16 = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")
_TO_LUMA = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
_SUPPORTED = (*_GRAY16, "I", "F", *_ALPHA, *_TO_LUMA)
_WORK_BYTES = 12  # per pixel beyond Pillow's own storage: conversion to luma, alpha compositing, the array


def decode_image(data: bytes, label: str, fmt: str, which: SliceChoice, reduce_to: int | None = None) -> list[Scan]:
    """Decode the selected page(s) of an image; only TIFF files have more than one page.

    Args:
        data: the file content, already sniffed as `fmt`.
        label: file name for errors and Scan.source.
        fmt: a key of PIL_FORMATS.
        which: "all", "middle" or a page index.
        reduce_to: for JPEG, libjpeg scales the DCT so the short side stays >= reduce_to
            (other formats are reduced later by the caller).

    Raises:
        ScanReadError: the header or pixel data is corrupt, truncated, too large or too small.
    """
    # Pillow warns about damage it works around (bad EXIF, odd TIFF tags) and about 89-179 MP
    # images; we either return a valid scan or raise, and check our own MAX_PIXELS on the header,
    # so those warnings would only be noise in every data-loading loop.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_complete(data, label, fmt)
        with _open(data, label, fmt) as im:
            count = _page_count(im, label, fmt)
            return [
                Scan(
                    pixels=_decode_page(im, label, fmt, reduce_to, page=index if count > 1 else None),
                    source=label,
                    format=fmt,
                    mode=im.mode,
                    slice_index=index if count > 1 else None,
                    num_slices=count,
                )
                for index in pick_indices(label, count, which)
            ]


def _open(data: bytes, label: str, fmt: str) -> Image.Image:
    name = PIL_FORMATS[fmt]
    try:
        return Image.open(io.BytesIO(data), formats=[name])
    except Exception as exc:  # Pillow raises many types on hostile headers; all mean "corrupt"
        if isinstance(exc, Image.DecompressionBombError):
            raise ScanReadError(label, f"image is over the {MAX_PIXELS // 10**6}-megapixel limit (bomb?)") from None
        if _is_truncation(exc):
            raise ScanReadError(label, f"truncated {name} file: it ends inside the header") from exc
        if fmt == "png" and b"\x00\x00\x00\x00" in (data[16:20], data[20:24]):
            raise ScanReadError(label, "image has a zero-size dimension (PNG header width or height is 0)") from exc
        raise ScanReadError(label, f"corrupt {name} header ({_short(exc)})") from exc


def _page_count(im: Image.Image, label: str, fmt: str) -> int:
    if fmt != "tiff":
        return 1
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception as exc:  # a broken IFD chain surfaces while counting pages
        raise ScanReadError(label, f"corrupt TIFF page list ({_short(exc)})") from exc


def _decode_page(im: Image.Image, label: str, fmt: str, reduce_to: int | None, page: int | None) -> np.ndarray:
    name = PIL_FORMATS[fmt]
    if page is not None:
        try:
            im.seek(page)
        except Exception as exc:
            raise ScanReadError(label, f"corrupt {name} page {page} ({_short(exc)})") from exc
    check_plane(label, *im.size)  # before decoding: a bomb or a thumbnail is refused from the header
    check_budget(label, im.size[0] * im.size[1] * (_stored_bytes(im.mode) + _WORK_BYTES), f"decoding this {name}")
    if im.mode not in _SUPPORTED:
        raise ScanReadError(label, f"unsupported image mode {im.mode!r}; save the scan as grayscale or RGB")
    if reduce_to and fmt == "jpeg":
        im.draft(None, (reduce_to, reduce_to))
    try:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        pixels = _to_gray(im)
    except ScanReadError:
        raise
    except Exception as exc:  # the boundary: no decoder exception type other than ours escapes
        if _is_truncation(exc):
            raise ScanReadError(label, f"truncated {name} file: the pixel data ends early") from exc
        raise ScanReadError(label, f"corrupt {name} pixel data ({_short(exc)})") from exc
    check_finite(label, pixels)
    return pixels


def _stored_bytes(mode: str) -> int:
    """Bytes per pixel Pillow allocates for `mode` (multi-band modes are stored 4 bytes a pixel)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode in _GRAY16 else 4


def _check_complete(data: bytes, label: str, fmt: str) -> None:
    """Pillow decodes a PNG cut after its pixel data without complaint; the IEND chunk must be there."""
    if fmt == "png" and data.rfind(b"IEND", 33) < 0:
        raise ScanReadError(label, "truncated PNG file: the closing IEND chunk is missing")


def _is_truncation(exc: BaseException) -> bool:
    return isinstance(exc, EOFError) or "truncat" in str(exc).lower()


def _to_gray(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in _GRAY16:
        return np.asarray(im).astype(np.uint16)  # native byte order, every bit kept
    if mode in ("I", "F"):
        return np.asarray(im).astype(np.float32)
    if mode in _ALPHA or (mode == "P" and "transparency" in im.info):
        return _composite_on_black(im)
    return np.array(im if mode == "L" else im.convert("L"))  # np.array: writable, unlike asarray


def _composite_on_black(im: Image.Image) -> np.ndarray:
    """Luma weighted by alpha: transparent pixels become black.

    MRI background is black, so the area a transparent PNG leaves out should read as
    background, not as whatever colour (often white) is stored under alpha 0.
    """
    rgba = im.convert("RGBA")
    luma = np.asarray(rgba.convert("L"), dtype=np.uint16)
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint16)
    return ((luma * alpha + 127) // 255).astype(np.uint8)


def _short(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):  # its message only names a BytesIO object
        return "Pillow cannot parse it"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__
