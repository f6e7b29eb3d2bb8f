"""Head crops: what every comparison of the audit starts from."""

from __future__ import annotations

import cv2
import numpy as np

from braintumor.data.audit.features import head_crop


def test_head_crop_ignores_padding(phantom) -> None:
    img = phantom(5)
    padded = cv2.copyMakeBorder(img, 40, 10, 70, 0, cv2.BORDER_CONSTANT, value=0)
    a, b = head_crop(img).astype(float), head_crop(padded).astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
