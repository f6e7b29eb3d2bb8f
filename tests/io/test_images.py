"""Images in every Pillow mode and format the reader supports, written with Pillow into bytes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from braintumor.io import ScanReadError, is_scan_file, read_scan, read_slices

H, W = 48, 64  # not square, so a transposed result cannot pass a shape check
GRAY = (np.add.outer(np.arange(H) * 3, np.arange(W) * 2) % 256).astype(np.uint8)
GRAY[:6, :6] = 255  # bright top-left corner marks the orientation
WIDE = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 13 % 60000).astype(np.uint16)
WIDE[0, 0] = 40000  # a value that needs all 16 bits


def gray_image(mode: str) -> Image.Image:
    """GRAY (or WIDE for 16/32-bit modes) as a Pillow image in `mode` whose luma is known exactly."""
    L = Image.fromarray(GRAY)
    rgb = Image.merge("RGB", [L, L, L])
    builders = {
        "1": lambda: Image.fromarray(GRAY > 127),
        "L": lambda: L,
        "LA": lambda: Image.merge("LA", [L, Image.new("L", L.size, 255)]),
        "P": lambda: L.convert("P"),
        "PA": lambda: L.convert("PA"),
        "RGB": lambda: rgb,
        "RGBA": lambda: rgb.convert("RGBA"),
        "CMYK": lambda: rgb.convert("CMYK"),
        "YCbCr": lambda: rgb.convert("YCbCr"),
        "I;16": lambda: Image.fromarray(WIDE),
        "I;16B": lambda: Image.frombytes("I;16B", (W, H), WIDE.astype(">u2").tobytes()),
        "I": lambda: Image.fromarray(WIDE.astype(np.int32) * 1000),
        "F": lambda: Image.fromarray(GRAY.astype(np.float32) / 7 - 3),
    }
    return builders[mode]()


def expected(mode: str) -> tuple[np.ndarray, type]:
    """The grayscale array and dtype the reader must return for an image built by gray_image."""
    if mode == "1":
        return np.where(GRAY > 127, 255, 0).astype(np.uint8), np.uint8
    if mode in ("I;16", "I;16B"):
        return WIDE, np.uint16
    if mode == "I":
        return WIDE.astype(np.float32) * 1000, np.float32
    if mode == "F":
        return GRAY.astype(np.float32) / 7 - 3, np.float32
    return GRAY, np.uint8


# (format, mode written, mode Pillow reads back, max abs error): lossless unless stated.
CASES = [
    ("PNG", "1", "1", 0),
    ("PNG", "L", "L", 0),
    ("PNG", "LA", "LA", 0),
    ("PNG", "P", "P", 0),
    ("PNG", "RGB", "RGB", 0),
    ("PNG", "RGBA", "RGBA", 0),
    ("PNG", "I;16", "I;16", 0),
    ("BMP", "1", "1", 0),
    ("BMP", "L", "L", 0),
    ("BMP", "P", "L", 0),  # Pillow reads a grey-palette BMP as "L"
    ("BMP", "RGB", "RGB", 0),
    ("TIFF", "1", "1", 0),
    ("TIFF", "L", "L", 0),
    ("TIFF", "LA", "LA", 0),
    ("TIFF", "P", "P", 0),
    ("TIFF", "PA", "PA", 0),
    ("TIFF", "RGB", "RGB", 0),
    ("TIFF", "RGBA", "RGBA", 0),
    ("TIFF", "CMYK", "CMYK", 0),
    ("TIFF", "YCbCr", "YCbCr", 1),  # Pillow's Y channel differs from its RGB->L luma by rounding
    ("TIFF", "I;16", "I;16", 0),
    ("TIFF", "I;16B", "I;16B", 0),
    ("TIFF", "I", "I", 0),
    ("TIFF", "F", "F", 0),
    ("WEBP", "RGB", "RGB", 0),  # saved lossless
    ("WEBP", "RGBA", "RGB", 0),  # libwebp drops an all-opaque alpha channel
    ("JPEG", "L", "L", 12),  # lossy: compare loosely, mean error is checked too
    ("JPEG", "RGB", "RGB", 40),
    ("JPEG", "CMYK", "CMYK", 40),
]


@pytest.mark.parametrize(("fmt", "mode", "read_mode", "tolerance"), CASES, ids=lambda v: str(v))
def test_mode_round_trip(image_bytes, fmt, mode, read_mode, tolerance):
    kwargs = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    data = image_bytes(gray_image(mode), fmt, **kwargs)
    scan = read_scan(data, name=f"scan.{fmt.lower()}")
    want, dtype = expected(mode)
    assert scan.pixels.dtype == dtype
    assert scan.shape == (H, W)
    assert scan.mode == read_mode
    assert scan.format == fmt.lower()
    diff = np.abs(scan.pixels.astype(np.float64) - want.astype(np.float64))
    assert diff.max() <= tolerance
    assert diff.mean() <= min(tolerance, 2.0)


def test_16_bit_is_kept_exactly(image_bytes):
    for fmt in ("PNG", "TIFF"):
        scan = read_scan(image_bytes(gray_image("I;16"), fmt))
        assert scan.pixels.dtype == np.uint16
        assert scan.pixels[0, 0] == 40000
        np.testing.assert_array_equal(scan.pixels, WIDE)
        assert scan.as_float01()[0, 0] == pytest.approx(40000 / 65535)


def test_colour_becomes_luma(image_bytes):
    red = Image.new("RGB", (40, 40), (255, 0, 0))
    assert read_scan(image_bytes(red, "PNG")).pixels[0, 0] == 76  # ITU-R 601-2: 0.299 * 255


@pytest.mark.parametrize(("orientation", "corner"), [(1, (0, 0)), (3, (-1, -1)), (6, (0, -1)), (8, (-1, 0))])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_exif_orientation_is_applied(image_bytes, fmt, orientation, corner):
    exif = Image.Exif()
    exif[0x0112] = orientation
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    scan = read_scan(image_bytes(Image.fromarray(GRAY), fmt, exif=exif, **kwargs))
    rotated = orientation in (6, 8)
    assert scan.shape == ((W, H) if rotated else (H, W))
    # The bright 6x6 marker, stored top-left, must appear in the corner a viewer shows it in.
    rows = slice(0, 6) if corner[0] == 0 else slice(-6, None)
    cols = slice(0, 6) if corner[1] == 0 else slice(-6, None)
    assert scan.pixels[rows, cols].mean() > 240


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGBA"), ("PNG", "LA"), ("TIFF", "RGBA"), ("WEBP", "RGBA")])
def test_alpha_is_composited_on_black(image_bytes, fmt, mode):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere...
    rgba[:, :20, 3] = 0  # ...transparent on the left half
    rgba[:, 20:, 3] = 128  # half transparent on the right half
    im = Image.fromarray(rgba, "RGBA").convert(mode)
    scan = read_scan(image_bytes(im, fmt, **({"lossless": True, "exact": True} if fmt == "WEBP" else {})))
    assert scan.mode == mode
    assert scan.pixels.dtype == np.uint8
    assert (scan.pixels[:, :20] == 0).all()
    assert (scan.pixels[:, 20:] == 128).all()


def test_palette_transparency_is_black(image_bytes):
    im = Image.new("P", (40, 40), 1)
    im.putpalette([0, 0, 0, 255, 255, 255, 100, 100, 100] + [0] * 759)
    im.paste(2, (0, 0, 40, 20))
    px = read_scan(image_bytes(im, "PNG", transparency=1)).pixels
    assert (px[:20] == 100).all()  # opaque grey stays grey
    assert (px[20:] == 0).all()  # transparent white becomes background


def test_multi_page_tiff_pages_are_slices(image_bytes):
    pages = [Image.fromarray(np.full((40, 50), v, np.uint8)) for v in (10, 20, 30)]
    data = image_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    slices = read_slices(data)
    assert [s.pixels[0, 0] for s in slices] == [10, 20, 30]
    assert [s.slice_index for s in slices] == [0, 1, 2]
    assert all(s.num_slices == 3 for s in slices)
    assert read_scan(data).pixels[0, 0] == 20  # the middle page
    assert read_scan(data, slices=-1).pixels[0, 0] == 30
    with pytest.raises(ScanReadError, match="slice 5 requested but the file has 3"):
        read_scan(data, slices=5)


def test_plain_image_is_one_slice(image_bytes):
    scans = read_slices(image_bytes(Image.fromarray(GRAY), "PNG"))
    assert len(scans) == 1
    assert scans[0].slice_index is None
    assert scans[0].num_slices == 1


def test_constant_image_is_valid(image_bytes):
    """A blank (all-equal) image is a valid image: it is read, not refused."""
    scan = read_scan(image_bytes(Image.new("L", (40, 40), 7), "PNG"))
    assert (scan.pixels == 7).all()
    assert (scan.as_uint8() == 7).all()


def test_format_comes_from_content_not_suffix(image_bytes, tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(image_bytes(Image.fromarray(GRAY), "PNG"))
    scan = read_scan(path)
    assert scan.format == "png"
    assert scan.source == str(path)
    np.testing.assert_array_equal(scan.pixels, GRAY)
    assert read_scan(path.read_bytes()).source == "<bytes>"
    assert read_scan(path.read_bytes(), name="upload.png").source == "upload.png"


def test_pixels_are_writable(image_bytes):
    scan = read_scan(image_bytes(Image.fromarray(GRAY), "PNG"))
    assert scan.pixels.flags.writeable  # callers may normalise in place


def test_reduce_to_jpeg_uses_dct_scaling(samples_dir):
    path = samples_dir / "glioma" / "Te-gl_0013.jpg"
    full = read_scan(path)
    small = read_scan(path, reduce_to=128)
    assert full.shape == (512, 512)
    assert min(small.shape) >= 128
    assert small.shape[0] < 512
    # Same picture at lower resolution: close to a box-downscaled full decode.
    box = full.pixels.reshape(small.shape[0], 512 // small.shape[0], small.shape[1], -1).mean(axis=(1, 3))
    assert np.abs(box - small.pixels).mean() < 4


def test_reduce_to_other_formats_box_mean(image_bytes):
    px = np.zeros((64, 96), np.uint8)
    px[::2, ::2] = 200  # box mean of each 2x2 block is 50
    scan = read_scan(image_bytes(Image.fromarray(px), "PNG"), reduce_to=32)
    assert scan.shape == (32, 48)
    assert (scan.pixels == 50).all()
    assert read_scan(image_bytes(Image.fromarray(px), "PNG"), reduce_to=500).shape == (64, 96)
    with pytest.raises(ValueError, match="reduce_to"):
        read_scan(image_bytes(Image.fromarray(px), "PNG"), reduce_to=0)


def test_is_scan_file(tmp_path, dicom_bytes):
    assert is_scan_file("a/B.JPG")
    assert is_scan_file("vol.NII.GZ")
    assert not is_scan_file("notes.txt")
    no_suffix = tmp_path / "IM0001"
    no_suffix.write_bytes(dicom_bytes(np.zeros((40, 40), np.uint16)))
    assert not is_scan_file(no_suffix)
    assert is_scan_file(no_suffix, sniff_content=True)
    (tmp_path / "readme").write_text("hello")
    assert not is_scan_file(tmp_path / "readme", sniff_content=True)


def test_reading_a_jpeg_does_not_import_pydicom_or_nibabel(samples_dir):
    """The data layer decodes thousands of JPEGs; they must not pay for the medical readers' imports."""
    code = (
        "import sys; from braintumor.io import read_scan; "
        f"read_scan({str(samples_dir / 'glioma' / 'Te-gl_0013.jpg')!r}); "
        "print(sorted(m for m in ('pydicom', 'nibabel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_12_bit_data_in_a_16_bit_png_keeps_its_grey_levels(tmp_path) -> None:
    # Scanner exports store 12-bit values in 16-bit files; /65535 left about 16 grey levels after as_uint8.
    import io as _io

    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (64, 1))
    buf = _io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    scan = read_scan(buf.getvalue(), name="ramp12.png")
    assert scan.pixels.dtype == np.uint16 and len(np.unique(scan.as_uint8())) > 200
    assert scan.as_float01().max() == 1.0
    full = Image.fromarray((ramp.astype(np.uint32) * 16).astype(np.uint16))  # true 16-bit: unchanged scaling
    buf = _io.BytesIO()
    full.save(buf, format="PNG")
    px = read_scan(buf.getvalue(), name="ramp16.png").as_float01()
    assert np.allclose(px, (ramp.astype(np.float32) * 16) / 65535.0)
