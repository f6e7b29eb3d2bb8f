"""Pair scores on head crops: SSIM (sharp and blurred) and raw intensity difference, batched."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from braintumor.data.audit.features import FEATURE_SIDE, Fingerprints, area_thumbnails

BLUR_SIGMA = 1.5  # px on the 64 px crop: removes sharpening, noise and JPEG texture, keeps anatomy


@dataclass
class PairScores:
    """Scores of n pairs: `ssim` of percentile-scaled crops, `ssim_blur` of the same after a Gaussian
    blur (NaN where not needed), `mae` mean |difference| of raw 32 px thumbnails in gray levels (0-255)."""

    ssim: np.ndarray
    ssim_blur: np.ndarray
    mae: np.ndarray


def ssim_batch(a: np.ndarray, b: np.ndarray, win: int = 7) -> np.ndarray:
    """Mean SSIM of each pair of images in two (n, H, W) stacks with data range 1.

    Same result as `skimage.metrics.structural_similarity(a[k], b[k], data_range=1)` (uniform
    7x7 window, sample covariance, K1=0.01, K2=0.03, border of win//2 left out of the mean),
    computed for the whole batch at once because one call per pair costs ~0.4 ms and the audit
    scores tens of thousands of pairs. The stack is filtered as one tall image: windows that
    straddle two images only touch the borders that are left out anyway.
    """
    n, h, w = a.shape
    a, b = a.astype(np.float32).reshape(n * h, w), b.astype(np.float32).reshape(n * h, w)
    p = (win - 1) // 2

    box = np.full(win, 1.0 / win, np.float32)

    def mean(x: np.ndarray) -> np.ndarray:  # local means, border rows/cols of each image dropped
        return cv2.sepFilter2D(x, -1, box, box, borderType=cv2.BORDER_REFLECT).reshape(n, h, w)[:, p : h - p, p : w - p]

    ux, uy = mean(a), mean(b)
    uxx, uyy, uxy = mean(a * a), mean(b * b), mean(a * b)
    cov_norm = np.float32(win * win / (win * win - 1.0))
    c1, c2 = np.float32(0.01**2), np.float32(0.03**2)
    # SSIM = (2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2)), in place to spare memory traffic.
    uxuy = ux * uy
    num = uxy
    num -= uxuy
    num *= 2 * cov_norm
    num += c2
    uxuy *= 2
    uxuy += c1
    num *= uxuy
    ux2, uy2 = np.square(ux, out=ux), np.square(uy, out=uy)
    den = uxx
    den += uyy
    den -= ux2
    den -= uy2
    den *= cov_norm
    den += c2
    ux2 += uy2
    ux2 += c1
    den *= ux2
    num /= den
    return num.mean(axis=(1, 2), dtype=np.float64)


def flipped(x: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Copy of a (n, H, W) stack with image k mirrored left-right where flip[k] == 1, top-bottom where 2."""
    x = x.copy()
    x[flip == 1] = x[flip == 1][:, :, ::-1]
    x[flip == 2] = x[flip == 2][:, ::-1, :]
    return x


def scaled_crops(crops: np.ndarray) -> np.ndarray:
    """uint8 crops stretched from their 1st-99.5th percentile to 0-255, so SSIM compares structure, not exposure."""
    if len(crops) == 0:
        return crops.copy()
    lo, hi = np.percentile(crops.reshape(len(crops), crops[0].size), [1.0, 99.5], axis=1)
    scale = (255.0 / np.maximum(hi - lo, 1.0)).astype(np.float32)
    out = (crops - lo[:, None, None].astype(np.float32)) * scale[:, None, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)  # uint8 keeps memory at 4 kB per image


def score_pairs(
    fp: Fingerprints, i: np.ndarray, j: np.ndarray, flip: np.ndarray, blur_needed: np.ndarray, batch: int = 512
) -> PairScores:
    """Score pairs (i[k], j[k]) with image i[k] mirrored as flip[k] says (see `flipped`).

    `ssim_blur` is computed only where `blur_needed` is true (NaN elsewhere): it costs as much as
    the sharp SSIM and only decides pairs that the sharp one leaves open.
    """
    sharp = scaled_crops(fp.crops)
    thumbs = area_thumbnails(fp.crops, FEATURE_SIDE)
    out = PairScores(np.zeros(len(i)), np.full(len(i), np.nan), np.zeros(len(i)))
    unit = np.float32(1 / 255)
    for s in range(0, len(i), batch):
        ii, jj, ff = i[s : s + batch], j[s : s + batch], flip[s : s + batch]
        out.ssim[s : s + batch] = ssim_batch(flipped(sharp[ii], ff) * unit, sharp[jj] * unit)
        out.mae[s : s + batch] = np.abs(flipped(thumbs[ii], ff) - thumbs[jj]).mean(axis=(1, 2))
    todo = np.nonzero(blur_needed(out))[0]
    blurred = _blurred(sharp, np.unique(np.concatenate([i[todo], j[todo]])))
    for s in range(0, len(todo), batch):
        q = todo[s : s + batch]
        out.ssim_blur[q] = ssim_batch(flipped(blurred[i[q]], flip[q]) * unit, blurred[j[q]] * unit)
    return out


def blurred_each(x: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Each image of a (n, H, W) stack after a Gaussian blur of `sigma` px."""
    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in x]) if len(x) else x.copy()


def _blurred(sharp: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Gaussian-blurred copies of the crops listed in `which` (others left as zeros, never read)."""
    out = np.zeros_like(sharp)
    out[which] = blurred_each(sharp[which])
    return out
