"""The OOD detector's precision matrix is stored as its float32 upper triangle and restored symmetric."""

from __future__ import annotations

import numpy as np

from braintumor.models.ood import _unpack_triu


def test_upper_triangle_round_trip_restores_the_symmetric_matrix() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 7))
    sym = a @ a.T
    restored = _unpack_triu(sym[np.triu_indices(7)].astype(np.float32))
    assert restored.shape == (7, 7)
    np.testing.assert_allclose(restored, sym, rtol=1e-6)
    np.testing.assert_array_equal(restored, restored.T)
