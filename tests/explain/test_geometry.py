"""The CAM lines up with the original scan: crop box, inverse mapping, overlay sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.data.preprocess import Preprocess, crop_to_head
from braintumor.explain import Explainer, cam_to_original, overlay_image, overlay_png
from braintumor.io import read_scan
from braintumor.models import create_model, load_model


def test_crop_box_cuts_exactly_what_crop_to_head_cuts(samples_dir, make_head_scan) -> None:
    images = [read_scan(p).as_uint8() for p in sorted(samples_dir.glob("*/*.jpg"))]
    images += [make_head_scan(), make_head_scan(180, 90, centre=(45, 120), axes=(30, 50)), np.zeros((40, 70), np.uint8)]
    pp = Preprocess(image_size=64, margin=0.07)
    for img in images:
        x0, y0, x1, y1 = pp.crop_box(img)
        np.testing.assert_array_equal(img[y0:y1, x0:x1], crop_to_head(img, margin=0.07))
    assert Preprocess(image_size=224, crop=False).crop_box(images[0]) == (0, 0, images[0].shape[1], images[0].shape[0])


@pytest.mark.parametrize("crop", [True, False])
def test_inverse_mapping_puts_a_model_space_spot_back_where_it_was(make_head_scan, crop: bool) -> None:
    scan = make_head_scan()  # 200 x 300, head off-centre, blob at (195, 75)
    pp = Preprocess(image_size=64, crop=crop)
    seen = pp(scan).astype(np.float32)
    spot = (seen >= 200).astype(np.float32)  # the blob, as the model sees it: a perfect CAM
    assert spot.any()
    cam = cam_to_original(spot, scan.shape, pp.crop_box(scan))
    assert cam.shape == scan.shape and cam.dtype == np.float32 and cam.max() == 1.0
    y, x = np.unravel_index(np.argmax(cam), cam.shape)
    assert abs(x - 195) <= 4 and abs(y - 75) <= 4, (x, y)


def test_map_is_zero_outside_the_region_the_model_saw(make_head_scan) -> None:
    scan = make_head_scan()
    pp = Preprocess(image_size=64)
    x0, y0, x1, y1 = pp.crop_box(scan)
    assert (x0, y0) > (0, 0) and x1 < scan.shape[1]  # the test needs a real crop
    cam = cam_to_original(np.ones((64, 64), np.float32), scan.shape, (x0, y0, x1, y1))
    assert cam[y0:y1, x0:x1].min() == 1.0
    assert cam.sum() == (x1 - x0) * (y1 - y0)


@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("shape", [(200, 300), (300, 120)])
def test_overlay_has_the_original_scan_size(make_checkpoint, make_head_scan, crop: bool, shape) -> None:
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=2, in_chans=1, width=8).eval()
    explainer = Explainer(load_model(make_checkpoint(model, ["no", "yes"], crop=crop)))
    h, w = shape
    scan = make_head_scan(h, w, centre=(w // 2 + 10, h // 2 - 5), axes=(w // 4, h // 4))
    exp = explainer.explain(scan)
    assert exp.cam.shape == (h, w)
    assert overlay_image(scan, exp.cam).shape == (h, w, 3)
    png = Image.open(io.BytesIO(overlay_png(scan, exp.cam)))
    assert png.size == (w, h) and png.mode == "RGB"
    with_bar = overlay_image(scan, exp.cam, colorbar=True)
    assert with_bar.shape[0] == h and with_bar.shape[1] > w


def test_overlay_blends_heat_on_the_scan() -> None:
    scan = np.full((20, 30), 100, np.uint8)
    cam = np.zeros((20, 30), np.float32)
    cam[5, 7] = 1.0
    rgb = overlay_image(scan, cam, alpha=0.5)
    hot, cold = rgb[5, 7], rgb[0, 0]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red where the map is high, blue where it is low
    np.testing.assert_array_equal(overlay_image(scan, cam, alpha=0.0), np.repeat(scan[..., None], 3, axis=2))


def test_overlay_rejects_a_cam_of_another_size_and_a_bad_alpha() -> None:
    scan = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        overlay_image(scan, np.zeros((30, 20), np.float32))
    with pytest.raises(ValueError, match="alpha"):
        overlay_image(scan, np.zeros((20, 30), np.float32), alpha=1.5)
