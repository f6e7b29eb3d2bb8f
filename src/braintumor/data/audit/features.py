"""Per-image fingerprints for the leakage audit: file hash, head-cropped thumbnail, normalised feature.

Each file is read once: its bytes are hashed (exact copies) and decoded at reduced scale
(`read_scan(..., reduce_to=128)`: JPEG DCT scaling, 4-8x fewer pixels to decode) into a
thumbnail of the head's bounding box. Comparing crops of the head, not whole frames, makes the
audit largely blind to padding, framing, resizing and brightness offsets, which vary between the
source collections that get merged into datasets. Not blind to everything: with 5712 Nickparvar
training scans as distractors (`benchmarks/audit_recall.py`), this comparison alone pairs all
brightened (+10 levels), re-encoded and mirrored copies of 120 test scans with their originals,
118-119 of 120 resized, contrast-changed or 16-bit ones and 106 padded by 10 %, but only 107
rotated by 3 degrees, 44 by 5 degrees, 40 cropped by 5 % per side and 14 by 10 % (a crop into the
head changes its box). The audit's second look (`align`) registers such pairs and raises those
to 119, 112, 96 and 54 (padded: 112).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from braintumor.data.preprocess import Box
from braintumor.io import ScanReadError, read_scan

DECODE_SIDE = 128  # decode at >= this short side: enough for a 64 px crop of a head that fills half the frame
CROP_SIDE = 64  # side of the stored head crop, used for SSIM and raw-intensity checks
FEATURE_SIDE = 32  # side of the normalised feature; 16 px makes different patients' slices look alike


@dataclass
class Fingerprints:
    """Fingerprints of N readable files, in the order of `paths`.

    Attributes:
        paths: absolute paths.
        index: position of each readable file in the list given to `fingerprint_files`.
        sha1: hex SHA-1 of each file's bytes.
        crops: (N, CROP_SIDE, CROP_SIDE) uint8 head crops.
        unreadable: (path, reason) for each file that could not be read; not in the arrays.
    """

    paths: list[Path]
    index: np.ndarray
    sha1: list[str]
    crops: np.ndarray
    unreadable: list[tuple[Path, str]]

    def features(self, flip: str | None = None) -> np.ndarray:
        """(N, FEATURE_SIDE**2) float32 rows of unit norm (see `unit_features`) of the head crops, mirrored
        as `flip` says: None, "h" or "v"."""
        crops = self.crops
        if flip == "h":
            crops = crops[:, :, ::-1]
        elif flip == "v":
            crops = crops[:, ::-1, :]
        return unit_features(crops)


def unit_features(crops: np.ndarray) -> np.ndarray:
    """(N, FEATURE_SIDE**2) float32 rows of unit norm: mean-centred FEATURE_SIDE px thumbnails of (N, H, H)
    crops, so a dot product is the Pearson correlation (blind to brightness and contrast scaling)."""
    x = area_thumbnails(crops, FEATURE_SIDE).reshape(len(crops), FEATURE_SIDE * FEATURE_SIDE)
    x -= x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    # A constant image has no structure to correlate; a zero row matches nothing (hashes still do).
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 1e-6)


def zoomed_crops(crops: np.ndarray, share: float) -> np.ndarray:
    """(N, H, H) uint8: the central `share` of each crop's side, enlarged back to H px (bilinear). What a
    copy cropped into the head looks like next to its original's head crop."""
    side = crops.shape[1]
    m = round(side * (1 - share) / 2)
    if len(crops) == 0:
        return crops.copy()
    return np.stack(
        [cv2.resize(c[m : side - m, m : side - m], (side, side), interpolation=cv2.INTER_LINEAR) for c in crops]
    )


def area_thumbnails(crops: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side) float32: each (N, H, H) crop shrunk by exact area averaging (H a multiple of side)."""
    k = crops.shape[1] // side
    return crops.reshape(len(crops), side, k, side, k).mean(axis=(2, 4), dtype=np.float32)


def gray8(pixels: np.ndarray) -> np.ndarray:
    """uint8 view of decoded pixels that keeps relative intensities (needed to tell copies from contrast changes)."""
    if pixels.dtype == np.uint8:
        return pixels
    px = pixels.astype(np.float32)
    lo, hi = (0.0, float(px.max())) if pixels.dtype == np.uint16 else (float(px.min()), float(px.max()))
    # By the image's own range: a 12-bit scan in 16-bit storage would come out nearly black from 0-65535.
    return np.clip((px - lo) * (255.0 / max(hi - lo, 1e-6)) + 0.5, 0, 255).astype(np.uint8)


BOX_SIDE = 128  # px of short side the head finder's blur and margin are sized for; they scale with the image
CORNER = 0.08  # share of each side taken as a corner patch for the background level


def head_box(img: np.ndarray) -> Box:
    """Bounding box (x0, y0, x1, y1) of the largest bright blob: the head. Whole image when none is found.

    Not `preprocess.head_bbox`, the model's crop: this one must give a copy the box of its original, so it
    uses the darkest corner as background and the largest blob only; both follow the one `Box` convention.

    The blur and the margin scale with the image (as at BOX_SIDE px short side), so they do not depend on
    the size the file decoded at, and the threshold sits above the background level (the darkest corner,
    or the darkest 5 % of a scan the head fills): a copy that is resized, or brightened by a constant,
    gets the same box as its original.
    """
    h, w = img.shape
    unit = max(1.0, min(h, w) / BOX_SIDE)  # one pixel at BOX_SIDE, in this image's pixels
    k = 2 * round(2 * unit) + 1  # 5 px at BOX_SIDE
    blur = cv2.GaussianBlur(img, (k, k), 0).astype(np.float32)
    ch, cw = max(1, int(CORNER * h)), max(1, int(CORNER * w))
    corners = (blur[:ch, :cw], blur[:ch, -cw:], blur[-ch:, :cw], blur[-ch:, -cw:])
    background = min(min(float(np.median(c)) for c in corners), float(np.percentile(blur, 5)))
    # A low threshold keeps dark brain tissue inside the head; JPEG noise in the background stays below it.
    thr = background + max(12.0, 0.08 * (float(np.percentile(blur, 99.5)) - background))
    mask = (blur > thr).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return 0, 0, w, h
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[best])
    if area < 0.02 * h * w:
        return 0, 0, w, h
    m = round(unit)  # margin, so the skull edge stays inside the crop
    return max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)


def head_crop(img: np.ndarray, side: int = CROP_SIDE) -> np.ndarray:
    """The head's bounding box of a grayscale uint8 image, resized to side x side (uint8)."""
    x0, y0, x1, y1 = head_box(img)
    return cv2.resize(img[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)


def fingerprint_file(path: Path) -> tuple[str, np.ndarray] | str:
    """(sha1 of the bytes, head crop) of one file, or the reason it cannot be read."""
    try:
        data = path.read_bytes()
        # reduce_to: JPEGs decode 4-8x smaller inside libjpeg; a 64 px crop needs no more.
        pixels = gray8(read_scan(data, name=str(path), reduce_to=DECODE_SIDE).pixels)
    except ScanReadError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    return hashlib.sha1(data).hexdigest(), head_crop(pixels)


def default_workers() -> int:
    """Processes for the audit's parallel stages: one per available CPU, at most 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cpus)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool started by forkserver, not fork: the caller may hold threads (torch, a progress
    monitor) that fork would copy mid-lock."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def fingerprint_files(paths: list[Path], *, workers: int | None = None, progress: bool = True) -> Fingerprints:
    """Fingerprint every file, in a process pool when more than one CPU is available.

    Unreadable files are listed in `Fingerprints.unreadable`, never raised.
    """
    workers = default_workers() if workers is None else workers
    bar = tqdm(total=len(paths), desc="fingerprint", unit="img", disable=not progress, leave=False)
    results = []
    if workers > 1 and len(paths) > 200:
        with process_pool(workers) as pool:
            for r in pool.map(fingerprint_file, paths, chunksize=64):
                results.append(r)
                bar.update()
    else:
        for p in paths:
            results.append(fingerprint_file(p))
            bar.update()
    bar.close()
    ok = [(k, r) for k, r in enumerate(results) if not isinstance(r, str)]
    bad = [(paths[k], r) for k, r in enumerate(results) if isinstance(r, str)]
    crops = np.stack([r[1] for _, r in ok]) if ok else np.zeros((0, CROP_SIDE, CROP_SIDE), np.uint8)
    return Fingerprints(
        paths=[paths[k] for k, _ in ok],
        index=np.array([k for k, _ in ok], dtype=np.int64),
        sha1=[r[0] for _, r in ok],
        crops=crops,
        unreadable=bad,
    )
