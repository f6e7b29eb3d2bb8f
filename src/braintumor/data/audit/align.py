"""Second look for copies that the head-crop comparison misses: crops that cut into the head, small
rotations, re-framing that changes the head's bounding box.

Such edits change the box the head crop is taken from, so the two crops show the same anatomy at a
different position, scale or angle and their plain correlation and SSIM fall (a copy cropped by 5 % per
side: median SSIM 0.55, rotated by 5 degrees: 0.58). Here each image's `k` most correlated partners
(any orientation) are registered: an affine ECC fit (`cv2.findTransformECC`, OpenCV's enhanced
correlation coefficient maximisation, chosen over writing a registration because it is robust to
contrast changes and converges in well under a millisecond at 32 px) warps one 64 px crop onto the
other, and the pair is scored again on the aligned crops. Fits that fold, flip or stretch the image
beyond what re-framing does are refused, so the fit cannot force unrelated scans together.

Why the nearest partners and not a correlation gate: unrelated slices at the same anatomical level reach
a plain correlation of 0.95, while a cropped copy can fall to 0.5, so no gate separates them; a copy is
nevertheless almost always among an image's few most correlated images (crop 5 %: 96 of 120 within the
top 8 among 5832 Nickparvar training scans and the originals).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from braintumor.data.audit.features import area_thumbnails, default_workers, process_pool
from braintumor.data.audit.scores import blurred_each, flipped, scaled_crops, ssim_batch

FIT_SIDE = 32  # px the fit runs at: half the crop side, twice as fast and as often right (crafted copies)
ECC_SIGMA = 0.7  # px of Gaussian smoothing before the fit, at FIT_SIDE: a wider basin, no JPEG texture
ECC_ITERATIONS = 30  # copies converge in a few; unrelated pairs, which cost most, stop here
MIN_SCALE, MAX_SCALE = 0.65, 1.55  # singular values of the fitted linear part: re-framing, not folding
MAX_SHIFT = 0.25  # of the crop side
CHUNK = 2048  # pairs per task of the process pool (16 MB of crops in, 4 numbers a pair out)
# Starting scales of the fit (b's grid into a's): as they are, then b a crop of a, then a a crop of b. From the
# identity alone the fit misses a copy cropped by 10-12 % per side of a head that fills the frame (scale 1.25).
INIT_SCALES = (1.0, 0.8, 1.25)
MIN_COVER = 0.97  # share of the target crop the warped image must cover; else warp the other way


@dataclass
class Aligned:
    """Scores of n pairs after registration; `ok` is false where no acceptable fit was found (scores 0)."""

    ok: np.ndarray
    ssim: np.ndarray
    ssim_blur: np.ndarray
    mae: np.ndarray


def _acceptable(warp: np.ndarray, side: int) -> bool:
    lin = warp[:, :2]
    if np.linalg.det(lin) <= 0:
        return False
    sv = np.linalg.svd(lin, compute_uv=False)
    if sv.min() < MIN_SCALE or sv.max() > MAX_SCALE:
        return False
    centre = np.array([side / 2, side / 2])
    return bool(np.abs(lin @ centre + warp[:, 2] - centre).max() <= MAX_SHIFT * side)


def _cover(warp: np.ndarray, side: int) -> float:
    """Share of the target frame whose points `warp` sends inside the source frame."""
    g = (np.arange(8) + 0.5) * side / 8
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    src = pts @ warp[:, :2].T + warp[:, 2]
    return float(((src >= 0) & (src <= side - 1)).all(1).mean())


def _fit(fa: np.ndarray, fb: np.ndarray, side: int) -> np.ndarray | None:
    """Affine warp (in `side` px) taking b's pixel grid into a's, fitted on the FIT_SIDE px images fa, fb;
    None when no start (INIT_SCALES) gives an acceptable fit. Later starts are tried only when the first
    fails, so most pairs cost one fit."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-4)
    centre = (FIT_SIDE - 1) / 2
    for s in INIT_SCALES:
        warp = np.array([[s, 0, centre * (1 - s)], [0, s, centre * (1 - s)]], np.float32)
        try:
            _, warp = cv2.findTransformECC(fb, fa, warp, cv2.MOTION_AFFINE, criteria, None, 1)
        except cv2.error:  # no convergence, or a flat image
            continue
        # The same warp in full-size pixels (pixel centres at (x + 0.5) * side / FIT_SIDE - 0.5).
        f = side / FIT_SIDE
        warp[:, 2] = f * warp[:, 2] + (f - 1) / 2 * (1 - warp[:, :2].sum(1))
        if _acceptable(warp, side):
            return warp
    return None


def register_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Align two (side, side) uint8 crops: (moved, target, covered), one warped onto the other, `covered`
    true where the moved image has pixels; None when no acceptable affine fit is found. The image that
    covers the other's frame is the one moved, so the compared pictures hold as little empty border as
    possible."""
    side = a.shape[0]
    small = [cv2.resize(x, (FIT_SIDE, FIT_SIDE), interpolation=cv2.INTER_AREA) for x in (a, b)]
    fa, fb = (cv2.GaussianBlur(x.astype(np.float32) / 255, (0, 0), ECC_SIGMA) for x in small)
    warp = _fit(fa, fb, side)
    if warp is None:
        return None
    moving, target = a, b
    cover = _cover(warp, side)
    if cover < MIN_COVER:
        back = cv2.invertAffineTransform(warp)
        if _cover(back, side) > cover:
            moving, target, warp = b, a, back

    def move(x: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(x, warp, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)

    # Only pixels whose whole bilinear footprint lies inside the moved image: a sample that is partly
    # border (0) would darken the skull edge and add to the aligned mae of an exact copy.
    return move(moving), target, move(np.full_like(moving, 255)) == 255


def _score_chunk(a: np.ndarray, b: np.ndarray, feature_side: int, blur_sigma: float, blur_band: tuple[float, float]):
    """Register and score pairs (a[k], b[k]): arrays ok, ssim, ssim_blur, mae (see `align_scores`).

    Runs whole in a worker process, so that only four numbers per pair travel back."""
    n = len(a)
    ok, ssim, mae = np.zeros(n, bool), np.zeros(n), np.full(n, np.inf)
    ssim_blur = np.full(n, np.nan)
    fits = [register_pair(x, y) for x, y in zip(a, b, strict=True)]
    ok[:] = [f is not None for f in fits]
    if not ok.any():
        return ok, ssim, ssim_blur, mae
    moved, target, valid = (np.stack([f[m] for f in fits if f is not None]) for m in range(3))
    sa, sb = scaled_crops(moved), scaled_crops(target)
    unit = np.float32(1 / 255)
    sharp = ssim_batch(sa * unit, sb * unit)
    # The blurred SSIM decides only pairs the sharp one leaves open; below blur_band[0] none reached
    # the blurred threshold on Nickparvar (lowest sharp SSIM among them: 0.52).
    todo = np.nonzero((sharp >= blur_band[0]) & (sharp < blur_band[1]))[0]
    blurred = np.full(len(sharp), np.nan)
    if len(todo):
        blurred[todo] = ssim_batch(blurred_each(sa[todo], blur_sigma) * unit, blurred_each(sb[todo], blur_sigma) * unit)
    ta, tb, tw = (area_thumbnails(x, feature_side) for x in (moved, target, valid.astype(np.uint8)))
    covered = tw > 0.99
    ssim[ok], ssim_blur[ok] = sharp, blurred
    mae[ok] = np.abs(ta - tb).sum(axis=(1, 2), where=covered) / np.maximum(covered.sum(axis=(1, 2)), 1)
    return ok, ssim, ssim_blur, mae


def align_scores(
    crops: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    flip: np.ndarray,
    feature_side: int,
    blur_sigma: float,
    blur_band: tuple[float, float] = (0.0, np.inf),
    workers: int | None = None,
) -> Aligned:
    """Register each pair (crop i[k] mirrored as flip[k] says, crop j[k]) and score the aligned crops as
    `scores.score_pairs` scores plain ones: SSIM sharp and blurred of percentile-scaled crops, and the
    mean |raw difference| of feature_side px thumbnails over the part both cover.

    Args:
        blur_band: the blurred SSIM is computed only where the sharp one lies in [low, high) (NaN elsewhere).
        workers: processes for the fits (default: as for fingerprinting).
    """
    n = len(i)
    if n == 0:
        return Aligned(np.zeros(0, bool), np.zeros(0), np.zeros(0), np.zeros(0))
    workers = default_workers() if workers is None else workers
    args = (feature_side, blur_sigma, blur_band)
    starts = range(0, n, CHUNK)

    def chunk(s: int) -> tuple[np.ndarray, np.ndarray]:  # built when sent: 8 kB a pair, never all at once
        return flipped(crops[i[s : s + CHUNK]], flip[s : s + CHUNK]), crops[j[s : s + CHUNK]]

    if workers > 1 and len(starts) > 1:
        # ~0.6 ms a fit, mostly inside OpenCV but not in parallel under threads: processes, in chunks,
        # with at most two chunks per worker in flight.
        parts = []
        with process_pool(workers) as pool:
            pending: deque = deque()
            for s in starts:
                pending.append(pool.submit(_score_chunk, *chunk(s), *args))
                if len(pending) >= 2 * workers:
                    parts.append(pending.popleft().result())
            parts += [f.result() for f in pending]
    else:
        parts = [_score_chunk(*chunk(s), *args) for s in starts]
    return Aligned(*(np.concatenate(col) for col in zip(*parts, strict=True)))
