"""Preprocessing: crop to the head, pad to square, resize; the same head in any framing gives the same image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from braintumor.data import Preprocess, crop_to_head, load_preprocessed, pad_to_square, resize
from braintumor.data.preprocess import head_bbox


def _head(h: int = 300, w: int = 400, center=(220, 140), axes=(90, 110), background: int = 0) -> np.ndarray:
    img = np.full((h, w), background, np.uint8)
    cv2.ellipse(img, center, axes, 0, 0, 360, 140, -1)
    cv2.ellipse(img, center, (axes[0] // 2, axes[1] // 2), 0, 0, 360, 60, -1)  # darker interior structure
    return img


def test_head_bbox_finds_the_head_and_ignores_text_and_frames():
    img = _head()
    cv2.putText(img, "R", (5, 290), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)  # burnt-in letter far away
    cv2.rectangle(img, (0, 0), (399, 299), 255, 2)  # printed frame along the edges
    x0, y0, x1, y1 = head_bbox(img)
    assert abs(x0 - 130) <= 3 and abs(x1 - 311) <= 3 and abs(y0 - 30) <= 3 and abs(y1 - 251) <= 3


def test_head_bbox_sees_the_head_on_a_grey_background():
    x0, _, x1, _ = head_bbox(_head(background=25))
    assert abs(x0 - 130) <= 3 and abs(x1 - 311) <= 3


def test_crop_is_a_no_op_on_a_blank_image():
    blank = np.zeros((50, 80), np.uint8)
    assert head_bbox(blank) is None
    assert crop_to_head(blank) is blank


def test_crop_keeps_a_margin():
    x0, y0, x1, y1 = head_bbox(_head())
    crop = crop_to_head(_head(), margin=0.1)
    assert crop.shape == (y1 - y0 + 2 * round(0.1 * (y1 - y0)), x1 - x0 + 2 * round(0.1 * (x1 - x0)))
    assert crop_to_head(_head(), margin=0).shape == (y1 - y0, x1 - x0)


def test_pad_to_square_centres_on_black():
    img = np.full((10, 30), 200, np.uint8)
    sq = pad_to_square(img)
    assert sq.shape == (30, 30)
    assert (sq[10:20] == 200).all() and (sq[:10] == 0).all() and (sq[20:] == 0).all()


def test_resize_both_ways():
    img = np.random.default_rng(0).integers(0, 255, (100, 100), dtype=np.uint8)
    assert resize(img, 40).shape == (40, 40) and resize(img, 300).shape == (300, 300)
    assert resize(img, 100) is img


def test_same_head_in_different_framings_preprocesses_alike():
    """The reason for cropping: padding and position must not reach the model."""
    a = _head(300, 400, center=(220, 140))
    b = _head(500, 300, center=(120, 300))
    pp = Preprocess(image_size=64)
    assert np.abs(pp(a).astype(int) - pp(b).astype(int)).mean() < 2
    raw = Preprocess(image_size=64, crop=False)
    assert np.abs(raw(a).astype(int) - raw(b).astype(int)).mean() > 10


def test_preprocess_key_is_stable_and_names_every_setting():
    assert Preprocess(image_size=224).key() == Preprocess(image_size=224).key() == "s224-crop-m0.04-t0.5-p1"
    keys = {
        Preprocess(image_size=128).key(),
        Preprocess(image_size=224, crop=False).key(),
        Preprocess(image_size=224, margin=0.1).key(),
    }
    assert len(keys | {Preprocess(image_size=224).key()}) == 4


def test_preprocess_dict_round_trip_and_errors():
    pp = Preprocess(image_size=96, crop=False)
    assert "image_size" not in pp.to_dict()  # one home: the checkpoint's own image_size field
    assert Preprocess.from_dict(pp.to_dict(), 96) == pp
    assert Preprocess.from_dict({**pp.to_dict(), "image_size": 96}, 96) == pp  # older sidecars, consistent
    with pytest.raises(ValueError, match="say 64 px but the model's image_size is 96"):
        Preprocess.from_dict({**pp.to_dict(), "image_size": 64}, 96)
    with pytest.raises(ValueError, match=r"unknown preprocessing settings \['size'\]"):
        Preprocess.from_dict({"size": 3}, 96)
    for bad in (0, 31, 1025, 64.0, True):
        with pytest.raises(ValueError, match="image_size must be a whole number of pixels from 32 to 1024"):
            Preprocess(image_size=bad)
    with pytest.raises(ValueError, match="2-D uint8"):
        Preprocess(image_size=224)(np.zeros((4, 4, 3), np.uint8))


def test_samples_preprocess_to_square_uint8(samples_dir):
    for path in sorted(samples_dir.rglob("*.jpg")):
        out = load_preprocessed(path, Preprocess(image_size=96))
        assert out.shape == (96, 96) and out.dtype == np.uint8
        assert out[:, :3].mean() < out[32:64, 32:64].mean()  # head in the middle, dark edge
