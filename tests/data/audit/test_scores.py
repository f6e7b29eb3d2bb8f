"""Pair scores: the batched SSIM."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from braintumor.data.audit.scores import ssim_batch


def test_ssim_batch_matches_skimage() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((6, 64, 64)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1).astype(np.float32)
    expected = [structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ssim_batch(a, b), expected, atol=1e-5)
