"""DICOM written from scratch with pydicom and NIfTI written with nibabel, read back value by value."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from braintumor.io import ScanReadError, read_scan, read_slices

ROWS, COLS = 48, 64  # not square, so a transposed result cannot pass a shape check


def corner_pattern(top_left: int = 1000, bottom_right: int = 500) -> np.ndarray:
    """Zeros with a bright 4x4 top-left corner and a dimmer bottom-right block."""
    px = np.zeros((ROWS, COLS), np.uint16)
    px[:4, :4] = top_left
    px[-8:, -8:] = bottom_right
    return px


# ---------------------------------------------------------------- DICOM


def test_dicom_min_max_and_orientation(dicom_bytes):
    scan = read_scan(dicom_bytes(corner_pattern()), name="a.dcm")
    assert scan.format == "dicom"
    assert scan.pixels.dtype == np.float32
    assert scan.shape == (ROWS, COLS)
    assert scan.pixels[0, 0] == 1.0  # the bright corner stays top-left
    assert scan.pixels[-1, -1] == pytest.approx(0.5)
    assert scan.pixels[20, 20] == 0.0
    assert scan.mode == "MONOCHROME2"
    assert scan.extra["intensity"] == "min-max"


def test_dicom_rescale_then_window(dicom_bytes):
    # stored 1000 -> 2*1000-100 = 1900 (above the window), 500 -> 900, 0 -> -100.
    data = dicom_bytes(corner_pattern(), RescaleSlope=2, RescaleIntercept=-100, WindowCenter=900, WindowWidth=2001)
    px = read_scan(data).pixels
    # DICOM PS3.3 C.11.2.1.2.1 linear window, scaled to [0, 1]: ((x - (c - 0.5)) / (w - 1) + 0.5).
    assert px[0, 0] == 1.0
    assert px[-1, -1] == pytest.approx((900 - 899.5) / 2000 + 0.5)
    assert px[20, 20] == pytest.approx((-100 - 899.5) / 2000 + 0.5)


@pytest.mark.parametrize(("center", "width"), [("nan", "400"), ("40", "nan"), ("inf", "400"), ("40", "-inf")])
def test_dicom_window_that_is_not_a_number_falls_back_to_min_max(dicom_bytes, center: str, width: str) -> None:
    # a scanner export with WindowCenter "nan" once gave an all-NaN slice, trained on as a black image
    scan = read_scan(dicom_bytes(corner_pattern(), WindowCenter=center, WindowWidth=width), name="w.dcm")
    assert np.isfinite(scan.pixels).all()
    assert scan.extra["intensity"] == "min-max"
    assert scan.pixels[0, 0] == 1.0 and scan.pixels[20, 20] == 0.0


def test_dicom_window_clips_and_linear_exact(dicom_bytes):
    data = dicom_bytes(corner_pattern(), WindowCenter=250, WindowWidth=500, VOILUTFunction="LINEAR_EXACT")
    px = read_scan(data).pixels
    assert px[0, 0] == 1.0  # 1000 is above the window
    assert px[-1, -1] == 1.0  # 500 is at its top edge
    assert px[20, 20] == 0.0
    mid = dicom_bytes(
        np.full((40, 40), 125, np.uint16), WindowCenter=250, WindowWidth=500, VOILUTFunction="LINEAR_EXACT"
    )
    assert read_scan(mid).pixels[0, 0] == pytest.approx(0.25)


def test_dicom_voi_lut_sequence(dicom_bytes):
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first mapped value 0, 8-bit output
    item.add_new(0x00283006, "US", [0, 51, 102, 255])  # LUT Data
    data = dicom_bytes(np.tile(np.arange(4, dtype=np.uint16), (40, 10)), VOILUTSequence=Sequence([item]))
    scan = read_scan(data)
    np.testing.assert_allclose(scan.pixels[0, :4], [0, 0.2, 0.4, 1.0], atol=1e-6)
    assert scan.extra["intensity"] == "voi-lut"


def test_dicom_monochrome1_is_inverted(dicom_bytes):
    px = read_scan(dicom_bytes(corner_pattern(), photometric="MONOCHROME1")).pixels
    assert px[0, 0] == 0.0  # highest stored value is black in MONOCHROME1
    assert px[20, 20] == 1.0
    assert px[-1, -1] == pytest.approx(0.5)


def test_dicom_signed_ct_style(dicom_bytes):
    px = np.full((40, 40), -1000, np.int16)  # -2024 HU after the intercept: below the window
    px[0, 0], px[0, 1] = 2000, 1064  # 976 HU (above), 40 HU (the window centre)
    scan = read_scan(dicom_bytes(px, RescaleIntercept=-1024, RescaleSlope=1, WindowCenter=40, WindowWidth=400))
    assert scan.pixels[0, 0] == 1.0
    assert scan.pixels[0, 1] == pytest.approx((40 - 39.5) / 399 + 0.5)
    assert scan.pixels[1, 1] == 0.0


def test_dicom_multi_frame(dicom_bytes):
    frames = np.stack([corner_pattern(top_left=100 * (i + 1)) for i in range(5)])
    frames[:, -8:, -8:] = 50
    data = dicom_bytes(frames, WindowCenter=250, WindowWidth=501)
    slices = read_slices(data, name="multi.dcm")
    assert len(slices) == 5
    assert [s.slice_index for s in slices] == list(range(5))
    assert all(s.num_slices == 5 and s.shape == (ROWS, COLS) for s in slices)
    expected = [min(1.0, max(0.0, (100 * (i + 1) - 249.5) / 500 + 0.5)) for i in range(5)]
    assert [float(s.pixels[0, 0]) for s in slices] == pytest.approx(expected)
    middle = read_scan(data)
    assert middle.slice_index == 2
    np.testing.assert_array_equal(middle.pixels, slices[2].pixels)
    assert read_scan(data, slices=-1).slice_index == 4


def test_dicom_enhanced_functional_groups(dicom_bytes):
    """Per-frame windows override shared ones, which override top-level ones."""

    def group(**attrs):
        item = Dataset()
        for key, value in attrs.items():
            setattr(item, key, value)
        return item

    shared = group(PixelValueTransformationSequence=Sequence([group(RescaleSlope=2, RescaleIntercept=0)]))
    per_frame = [group(FrameVOILUTSequence=Sequence([group(WindowCenter=c, WindowWidth=201)])) for c in (100, 200, 400)]
    frames = np.full((3, 40, 40), 100, np.uint16)  # rescaled to 200 in every frame
    data = dicom_bytes(
        frames,
        WindowCenter=5000,
        WindowWidth=10,
        SharedFunctionalGroupsSequence=Sequence([shared]),
        PerFrameFunctionalGroupsSequence=Sequence(per_frame),
    )
    values = [float(s.pixels[0, 0]) for s in read_slices(data)]
    assert values == pytest.approx([1.0, (200 - 199.5) / 200 + 0.5, 0.0])


def test_dicom_rgb_becomes_luma(dicom_bytes):
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 255
    scan = read_scan(dicom_bytes(rgb, photometric="RGB"))
    assert scan.pixels[0, 0] == pytest.approx(0.299)
    assert scan.extra["intensity"] == "colour"


def test_dicom_without_preamble_or_meta(dicom_bytes):
    full = read_scan(dicom_bytes(corner_pattern()))
    bare = read_scan(dicom_bytes(corner_pattern(), preamble=False))  # sniffed from its first tag
    np.testing.assert_array_equal(full.pixels, bare.pixels)


def test_dicom_spacing_and_privacy(dicom_bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reader must not let header-quoting warnings out
        scan = read_scan(dicom_bytes(corner_pattern(), PixelSpacing=[0.5, 0.75]))
    assert scan.spacing == (0.5, 0.75)
    text = repr(scan.extra) + scan.source + scan.mode
    assert "Doe" not in text and "SECRET" not in text
    assert set(scan.extra) == {
        "modality", "photometric_interpretation", "rows", "columns", "bits_stored",
        "number_of_frames", "transfer_syntax", "intensity",
    }  # fmt: skip
    with pytest.raises(ScanReadError) as err:
        read_scan(dicom_bytes(corner_pattern())[:-50], name="cut.dcm")
    assert "Doe" not in str(err.value) and "SECRET" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Unknown encoding")  # raised while building the file
def test_dicom_header_values_are_not_logged(dicom_bytes, caplog):
    data = dicom_bytes(corner_pattern(), SpecificCharacterSet="ISO_IR 999")  # pydicom logs this value
    caplog.clear()  # building the file logged it already
    with caplog.at_level(logging.DEBUG):
        assert read_scan(data).shape == (ROWS, COLS)
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]


# ---------------------------------------------------------------- NIfTI


def ras_volume() -> np.ndarray:
    """A 40 (x) x 50 (y) x 6 (z) volume in RAS+ index order: slice k holds the value k, and a
    marker of 99 sits at the patient's right-anterior corner (largest x, largest y) of every slice."""
    vol = np.repeat(np.arange(6, dtype=np.float32)[None, None, :], 40 * 50, axis=0).reshape(40, 50, 6)
    vol[-3:, -3:, :] = 99
    return vol


RAS = np.diag([0.8, 0.9, 3.0, 1.0])  # voxel sizes x=0.8, y=0.9, z=3 mm


def check_display(scans):
    """Radiological display: anterior at the top, the patient's right on the image's left."""
    assert [s.slice_index for s in scans] == list(range(len(scans)))
    for k, scan in enumerate(scans):
        assert scan.shape == (50, 40)  # rows follow y, columns follow x
        assert (scan.pixels[:3, :3] == 99).all()  # right-anterior corner is top-left
        assert scan.pixels[10, 10] == k
        assert scan.pixels.dtype == np.float32


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_canonical_volume(nifti_bytes, gz):
    data = nifti_bytes(ras_volume(), RAS, gz=gz)
    scans = read_slices(data, name="v.nii.gz" if gz else "v.nii")
    assert len(scans) == 6
    check_display(scans)
    middle = read_scan(data)
    assert middle.slice_index == 3 and middle.num_slices == 6
    assert middle.pixels[10, 10] == 3
    assert middle.spacing == pytest.approx((0.9, 0.8))
    assert middle.format == "nifti" and middle.extra["stored_orientation"] == "RAS"


def test_nifti_flipped_affine_gives_the_same_display(nifti_bytes):
    """Stored L-P-I (every axis reversed) with a matching affine: same anatomy, same images."""
    flip = np.diag([-1.0, -1.0, -1.0, 1.0])
    flip[:3, 3] = [39, 49, 5]
    data = nifti_bytes(ras_volume()[::-1, ::-1, ::-1].copy(), RAS @ flip, gz=True)
    scans = read_slices(data)
    check_display(scans)
    assert scans[0].extra["stored_orientation"] == "LPI"


def test_nifti_permuted_axes_give_the_same_display(nifti_bytes):
    """Stored as (y, x, z) with an affine that swaps the first two axes."""
    swap = np.array([[0, 0.8, 0, 0], [0.9, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]])
    scans = read_slices(nifti_bytes(ras_volume().transpose(1, 0, 2).copy(), swap))
    check_display(scans)
    assert scans[0].spacing == pytest.approx((0.9, 0.8))


def test_nifti_2_and_4d_first_volume(nifti_bytes):
    four = np.stack([ras_volume(), ras_volume() + 1000], axis=-1)
    check_display(read_slices(nifti_bytes(four, RAS, version=2)))


def test_nifti_scaling_and_2d(nifti_bytes):
    import nibabel as nib

    img = nib.Nifti1Image(np.full((40, 40, 2), 10, np.int16), np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    assert read_scan(img.to_bytes()).pixels[0, 0] == 21
    flat = read_slices(nifti_bytes(np.ones((40, 50), np.float32), np.eye(4)))
    assert len(flat) == 1 and flat[0].shape == (50, 40)


def test_dicom_window_survives_as_float01(dicom_bytes):
    scan = read_scan(dicom_bytes(np.full((40, 40), 125, np.uint16), WindowCenter=250, WindowWidth=500))
    assert scan.pixels.max() < 0.5
    np.testing.assert_array_equal(scan.as_float01(), scan.pixels)  # no min-max stretch of a windowed image
    assert scan.as_uint8()[0, 0] == round(float(scan.pixels[0, 0]) * 255)


# ---------------------------------------------------------------- real files shipped inside pydicom's wheel


def test_dicom_with_a_tiff_header_in_its_preamble(dicom_bytes, pydicom_test_file):
    # PS3.10 leaves the 128-byte preamble to applications; dual-personality files put a TIFF header there.
    data = dicom_bytes(corner_pattern())
    tiff_preamble = b"II*\x00" + data[4:]
    np.testing.assert_array_equal(read_scan(tiff_preamble).pixels, read_scan(data).pixels)
    # pydicom's own MR_small.dcm is such a file: a real 64x64 MR slice
    scan = read_scan(pydicom_test_file("MR_small.dcm").read_bytes(), name="MR_small.dcm")
    assert (scan.format, scan.shape, scan.extra["modality"]) == ("dicom", (64, 64), "MR")


def test_dicom_variant_the_installed_plugin_cannot_decode(pydicom_test_file):
    # JPEG Extended with 12-bit samples: the syntax has a plugin here (Pillow), which decodes only 8 bits
    path = pydicom_test_file("JPEG-lossy.dcm")
    try:
        read_scan(path.read_bytes(), name=path.name)
    except ScanReadError as exc:
        assert exc.reason.startswith("compressed DICOM (JPEG Extended")
        assert "12-bit" in exc.reason and "cannot be decoded by the installed plugin(s) (pillow)" in exc.reason
        assert "pip install" in exc.reason
    else:
        pytest.skip("a plugin that decodes 12-bit JPEG is installed here")
