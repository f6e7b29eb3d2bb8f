"""The input gate: colour photos and blank images are refused; real scans, even stored as RGB, pass."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from braintumor.inference import read_input
from braintumor.inference.gate import MAX_COLOURED_SHARE, blank_refusal, colour_refusal, coloured_share
from braintumor.io import read_scan

from .conftest import encode


def test_colour_photo_is_refused(photo_jpeg: bytes) -> None:
    assert coloured_share(photo_jpeg) > 0.5
    assert "colour photograph" in colour_refusal(photo_jpeg)
    item = read_input(photo_jpeg, name="cat.jpg")
    assert item.scan is not None and item.error is None and item.refusal  # readable, but refused


def test_rgb_copy_of_a_grayscale_scan_passes(samples_dir: Path) -> None:
    gray = read_scan(sorted(samples_dir.glob("*/*.jpg"))[0]).as_uint8()
    rgb = np.repeat(gray[..., None], 3, axis=2)
    for data in (encode(rgb, "JPEG"), encode(rgb, "PNG"), encode(gray, "PNG")):
        assert colour_refusal(data) is None
    assert coloured_share(encode(gray, "PNG")) is None  # grayscale modes are not even examined


def test_scan_with_a_small_coloured_annotation_passes(samples_dir: Path) -> None:
    gray = read_scan(sorted(samples_dir.glob("*/*.jpg"))[0]).as_uint8()
    rgb = np.repeat(gray[..., None], 3, axis=2)
    rgb[10:60, 10:200] = (255, 0, 0)  # a red label over ~3.5 % of the image
    assert colour_refusal(encode(rgb, "PNG")) is None


def test_non_images_are_left_to_the_reader() -> None:
    assert coloured_share(b"DICM not really") is None and colour_refusal(b"") is None


def test_dicom_with_a_tiff_preamble_is_not_opened_as_an_image(pydicom_test_file) -> None:
    # pydicom's MR_small.dcm keeps a TIFF header in its preamble; Pillow would parse it and warn
    path = pydicom_test_file("MR_small.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        item = read_input(path)
    assert item.scan is not None and item.scan.format == "dicom"
    assert item.error is None and item.refusal is None


@pytest.mark.parametrize("value", [0, 37, 255])
def test_blank_images_are_refused(value: int) -> None:
    assert "blank" in blank_refusal(np.full((300, 200), value, np.uint8))
    noisy = np.full((300, 200), value, np.uint8)
    noisy[::50, ::50] = 255 - value  # a few specks do not make a scan
    assert blank_refusal(noisy) is not None


def test_scans_have_contrast(samples_dir: Path) -> None:
    for path in samples_dir.glob("*/*.jpg"):
        assert blank_refusal(read_scan(path).as_uint8()) is None


def test_no_real_scan_is_refused_by_the_gate(shared_data: Path) -> None:
    """300 random files per dataset (seeded): the gate must never refuse a real scan."""
    rng = random.Random(0)
    refused = []
    for dataset in ("nickparvar-7023", "figshare-cheng-3064", "chakrabarty-253"):
        files = sorted(p for p in (shared_data / dataset).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for path in rng.sample(files, min(300, len(files))):
            item = read_input(path)
            if item.scan is not None and (item.refusal or blank_refusal(item.scan.as_uint8())):
                refused.append(path.name)
    assert refused == [], f"refused real scans: {refused}; the gate is {MAX_COLOURED_SHARE:.0%} coloured pixels"
