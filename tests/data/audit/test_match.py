"""Candidate and nearest-partner search: the same pairs as brute force, in every orientation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from braintumor.data.audit.features import FEATURE_SIDE, Fingerprints
from braintumor.data.audit.match import FLIPS, candidate_pairs, nearest_pairs


def test_candidate_search_matches_brute_force_in_all_orientations(phantom) -> None:
    rng = np.random.default_rng(1)
    base = np.stack([cv2.resize(phantom(s), (64, 64), interpolation=cv2.INTER_AREA) for s in range(8)])
    crops = np.concatenate([base, base[:3, :, ::-1], base[3:5, ::-1, :]])  # plus h- and v-mirrors
    crops = np.clip(crops + rng.integers(0, 3, crops.shape), 0, 255).astype(np.uint8)
    fp = Fingerprints(paths=[], index=np.arange(len(crops)), sha1=[], crops=crops, unreadable=[])
    i, j, corr, flip = candidate_pairs(fp.features(), FEATURE_SIDE, gate=-1.0)
    views = [fp.features(f or None) for f in FLIPS]
    brute = np.stack([v @ views[0].T for v in views])
    np.testing.assert_allclose(corr, brute.max(0)[i, j], atol=1e-5)
    np.testing.assert_array_equal(flip, brute.argmax(0)[i, j])
    found = {(int(a), int(b)): FLIPS[f] for a, b, c, f in zip(i, j, corr, flip, strict=True) if c > 0.99}
    assert found == {(0, 8): "h", (1, 9): "h", (2, 10): "h", (3, 11): "v", (4, 12): "v"}


def test_nearest_pairs_matches_brute_force_in_all_orientations() -> None:
    rng = np.random.default_rng(3)
    side, n, k = 8, 40, 3
    x = rng.standard_normal((n, side * side)).astype(np.float32)
    x[5] = 0  # a blank frame: no partners
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    feats = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    i, j, corr, flip = nearest_pairs(feats, side, k)
    imgs = feats.reshape(n, side, side)
    views = [imgs, imgs[:, :, ::-1], imgs[:, ::-1, :]]  # FLIPS order
    sims = np.stack([np.einsum("ahw,bhw->ab", v, imgs) for v in views])  # sims[f, a, b]: a mirrored by f vs b
    best = sims.max(0)
    np.fill_diagonal(best, -np.inf)
    best[:, 5] = -np.inf
    expected = set()
    for a in range(n):
        if a == 5:
            continue
        for b in np.argsort(-best[a])[:k]:
            if best[a, b] >= 0.3:
                expected.add((min(a, b), max(a, b)))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    for a, b, c, f in zip(i, j, corr, flip, strict=True):
        assert c == pytest.approx(best[a, b], abs=1e-5) and sims[f, a, b] == pytest.approx(c, abs=1e-5)
    assert np.all(i < j)


def test_nearest_pairs_of_a_query_view_match_brute_force() -> None:
    # With `query` (a zoomed view of the same images), partners are the columns that best match each query row.
    rng = np.random.default_rng(4)
    side, n, k = 4, 30, 2
    feats, query = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in rng.standard_normal((2, n, side * side)))
    feats, query = feats.astype(np.float32), query.astype(np.float32)
    i, j, corr, flip = nearest_pairs(feats, side, k, query=query)
    q, f = query.reshape(n, side, side), feats.reshape(n, side, side)
    sims = np.stack([np.einsum("ahw,bhw->ab", v, f) for v in (q, q[:, :, ::-1], q[:, ::-1, :])])
    best = sims.max(0)
    np.fill_diagonal(best, -np.inf)
    listed: dict[tuple[int, int], tuple[float, int]] = {}
    for a in range(n):
        for b in np.argsort(-best[a])[:k]:
            key = (min(a, b), max(a, b))
            # Listed from both ends, the pair keeps the end with the higher correlation, and its orientation.
            if best[a, b] >= 0.3 and best[a, b] > listed.get(key, (-np.inf, 0))[0]:
                listed[key] = (best[a, b], int(np.argmax(sims[:, a, b])))
    assert len(listed) > n // 2 and set(zip(i.tolist(), j.tolist(), strict=True)) == set(listed)
    top = {(a, int(b)) for a in range(n) for b in np.argsort(-best[a])[:k] if best[a, b] >= 0.3}
    # Some pairs are listed from both ends, and the higher end is the second one (the higher image's row).
    assert any((a, b) in top and (b, a) in top and best[b, a] > best[a, b] for a, b in listed)
    for a, b, c, fl in zip(i.tolist(), j.tolist(), corr, flip, strict=True):
        assert c == pytest.approx(listed[a, b][0], abs=1e-5) and fl == listed[a, b][1]


def test_pair_corrs_match_mirrored_dot_products() -> None:
    from braintumor.data.audit.match import _pair_corrs

    rng = np.random.default_rng(5)
    n, side = 12, FEATURE_SIDE
    feats = rng.standard_normal((n, side * side)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    i, j, flip = rng.integers(0, n, 40), rng.integers(0, n, 40), rng.integers(0, 3, 40)
    imgs = feats.reshape(n, side, side)
    views = [imgs, imgs[:, :, ::-1], imgs[:, ::-1, :]]  # FLIPS order
    oriented, plain = _pair_corrs(feats, i, j, flip, chunk=16)
    np.testing.assert_allclose(
        oriented, [np.sum(views[f][a] * imgs[b]) for a, b, f in zip(i, j, flip, strict=True)], atol=1e-5
    )
    np.testing.assert_allclose(plain, [np.sum(imgs[a] * imgs[b]) for a, b in zip(i, j, strict=True)], atol=1e-5)
