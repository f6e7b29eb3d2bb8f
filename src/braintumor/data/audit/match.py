"""Find and classify duplicate pairs among fingerprinted images: exact, copy, mirror, near.

Search: unit-norm thumbnails (see `Fingerprints.features`) are compared all-against-all by
matrix products in row chunks, in three orientations (as is, mirrored left-right, mirrored
top-bottom), so each pair gets the Pearson correlation of its best orientation. Pairs above a gate
are then scored on the 64 px head crops (`scores`) and classified by `Thresholds`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from braintumor.data.audit.align import Aligned, align_scores
from braintumor.data.audit.features import FEATURE_SIDE, Fingerprints, unit_features, zoomed_crops
from braintumor.data.audit.scores import BLUR_SIGMA, score_pairs
from braintumor.io import ScanReadError, read_scan

KINDS = ("exact", "copy", "mirror", "near")  # strongest first
FLIPS = ("", "h", "v")  # orientation of the first image of a pair that best matches the second
MAX_PER_IMAGE = 64  # candidate partners kept per image, so a folder of blank frames cannot explode the pair count
MIN_CORR = 0.3  # nearest partners below this correlation are not worth a registration
BLUR_FROM = 0.45  # aligned pairs below this sharp SSIM are not given the blurred one (see align.py)
PLAIN_MARGIN = 0.1  # a pair that correlates best mirrored is also registered unmirrored when this close
# Central shares of a head crop whose enlarged views also look for nearest partners: a copy cropped into the
# head (or its original, seen from the copy) correlates poorly with the other's crop as it is, well with a
# zoomed view (crop 10 % per side: the original among the copy's 8 nearest partners for 54 of 120 crafted
# copies as it is, among those or the 8 nearest of either view for 100 of 120).
ZOOM_SHARES = (0.9, 0.8)


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds; each pair gets the strongest kind whose rule it meets:

        copy / mirror: corr >= copy_corr, ssim >= copy_ssim and mae <= copy_mae (mirror when the
                       best orientation is mirrored)
        near:          corr >= near_corr and (ssim >= near_ssim or ssim_blur >= near_ssim_blur)

    Pairs that meet neither rule get a second look when one is among the other's `neighbours` most
    correlated images, or among the `zoom_neighbours` images most correlated with a zoomed view of the
    other (ZOOM_SHARES): the two crops are registered (`align`) and scored again, aligned:

        copy / mirror: aligned ssim >= aligned_copy_ssim and aligned mae <= copy_mae
        near:          aligned ssim >= aligned_ssim or aligned ssim_blur >= aligned_ssim_blur

    corr: Pearson correlation of 32 px head thumbnails (blind to brightness/contrast scaling).
    ssim / ssim_blur: SSIM of 64 px head crops scaled to their 1st-99.5th percentiles, as they
    are / after a Gaussian blur of 1.5 px. mae: mean |difference| of raw 32 px thumbnails (0-255).

    How the defaults were set, on nickparvar-7023 (7023 images, picture grids of each band):
    - Unrelated scans: pairs of images of different classes (different patients) reach corr
      0.95 at the same anatomical level, but their ssim stays <= 0.65 and ssim_blur <= 0.81
      over all 2,200 such pairs with corr >= 0.88 (the only higher ones are a mislabelled copy and
      slices of that same patient). Same-class pairs just above 0.70 / 0.85 are adjacent slices of
      one scan or brightness/contrast-changed (augmented) copies. The sharp SSIM misses copies
      whose contrast was filtered (sharpened, equalised) and the blurred one misses some adjacent
      slices; either one confirms, and neither alone lets an unrelated pair through.
    - near_corr: below 0.88 almost no pair passes the SSIM tests anyway; 0.90 keeps the search
      small. Raising it (--threshold 0.95) keeps only the most similar slices.
    - Copies: among tumour-class pairs the ssim histogram has a valley between 0.85 and 0.92;
      above it the grids show re-encoded, resized or re-cropped copies (re-framed ones with corr
      down to 0.96), below it adjacent slices: ssim decides, copy_corr only guards. The mae of
      copies is 0-6 gray levels, that of contrast-changed versions 20-50, with almost nothing in
      between, hence copy_mae 8.
    - Aligned rules: the fit raises every pair's SSIM a little, so the plain near thresholds would let
      unrelated scans through: of the 7,055 different-class pairs among the 8 nearest partners of each
      Nickparvar image, one reaches aligned SSIM 0.701 and another blurred 0.856 (the 4 mislabelled
      copies aside, none more). 0.75 / 0.88 leave all of them out. On Nickparvar they add 10 leaking
      test scans, all, by eye, mirrored or neighbouring slices or re-framed copies of one patient's
      scan. Crafted copies (crop 5 %, rotation 5 degrees) align to SSIM 0.96 (median); whether such a
      pair is called copy or near is a label only, both count as leaks.
    - Zoomed views: with 2 partners per zoomed view the second look tries 62,558 pairs on Nickparvar
      (26,353 of them across classes, against 8,828 without), and still no different-class pair passes
      (highest 0.701 / 0.856, the same pairs). With the fit's zoomed starts (`align.INIT_SCALES`)
      they add 2 leaking test scans there (re-framed copies with a white border) and find 112 instead of
      96 of 120 crafted copies cropped by 5 % per side, 94 instead of 54 cropped by 10 %, at about twice
      the matching time (4 partners per view: 91 of 120 without the zoomed starts, at 1.5 times that).
    """

    near_corr: float = 0.90  # --threshold; 0.85-0.97 sensible: lower admits more distant slices
    near_ssim: float = 0.70  # sharp SSIM confirming a near pair
    near_ssim_blur: float = 0.85  # blurred SSIM confirming a near pair
    copy_corr: float = 0.95  # corr of a copy or mirror (same picture, maybe resized/re-encoded/re-framed)
    copy_ssim: float = 0.90  # sharp SSIM of a copy or mirror
    copy_mae: float = 8.0  # mean |difference| of raw intensities (0-255) for a copy; more = contrast change
    border: float = 0.02  # corr margin below near_corr where pairs are scored for the borderline grid
    neighbours: int = 8  # nearest partners per image given the aligned second look; 0 turns it off
    zoom_neighbours: int = 2  # nearest partners of each zoomed view (ZOOM_SHARES) also registered; 0: none
    aligned_ssim: float = 0.75  # sharp SSIM of a near pair after registration
    aligned_ssim_blur: float = 0.88  # blurred SSIM of a near pair after registration
    aligned_copy_ssim: float = 0.93  # sharp SSIM of a copy or mirror after registration

    def __post_init__(self) -> None:
        if not 0.0 < self.near_corr <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {self.near_corr}")
        for name in ("neighbours", "zoom_neighbours"):
            if not 0 <= getattr(self, name) <= MAX_PER_IMAGE:
                raise ValueError(f"{name} must be in [0, {MAX_PER_IMAGE}], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Pairs:
    """Scored candidate pairs (indices into the fingerprints), one entry per pair.

    `kind` is one of KINDS, or "" for a candidate that was scored but is no duplicate.
    """

    i: np.ndarray
    j: np.ndarray
    corr: np.ndarray
    flip: np.ndarray  # index into FLIPS: how image i is mirrored to match image j
    ssim: np.ndarray
    ssim_blur: np.ndarray
    mae: np.ndarray
    kind: np.ndarray
    how: np.ndarray  # for exact pairs: "bytes" or "pixels"
    aligned: np.ndarray  # True where the kind was decided on registered crops (ssim, ssim_blur, mae are those)

    def __len__(self) -> int:
        return len(self.i)

    def select(self, mask: np.ndarray) -> Pairs:
        return Pairs(**{k: v[mask] for k, v in self.__dict__.items()})


def parity_parts(feats: np.ndarray, side: int) -> list[np.ndarray]:
    """Split (N, side*side) features into their four mirror-parity parts, each (N, side*side/4).

    A thumbnail X is the sum of four orthogonal parts that are symmetric or antisymmetric under a
    left-right mirror H and a top-bottom mirror V. With P_hv the dot products of matching parts,
    <X,Y> = P++ + P+- + P-+ + P--, <HX,Y> = P++ + P+- - P-+ - P-- and <VX,Y> = P++ - P+- + P-+ - P--.
    A part is fixed by one quadrant, so the four products cost as much as one full product: all
    three orientations for the price of one.
    """
    x = feats.reshape(len(feats), side, side)
    half = side // 2
    parts = []
    for xh in (x + x[:, :, ::-1], x - x[:, :, ::-1]):
        for xhv in (xh + xh[:, ::-1, :], xh - xh[:, ::-1, :]):
            # Each part is xhv / 4; its quadrant carries a quarter of its squared norm, hence * 2 / 4.
            parts.append(np.ascontiguousarray(xhv[:, :half, :half].reshape(len(x), half * half)) * np.float32(0.5))
    return parts


def oriented_products(pp, pm, mp, mm):
    """(as is, mirrored left-right, mirrored top-bottom): the dot products of X, HX, VX with Y, from the
    products of their parity parts (see `parity_parts`); arrays of any matching shape."""
    return pp + pm + mp + mm, pp + pm - mp - mm, pp - pm + mp - mm


def candidate_pairs(feats: np.ndarray, side: int, gate: float, chunk: int | None = None) -> tuple[np.ndarray, ...]:
    """All pairs i < j whose best-orientation correlation is >= gate: (i, j, corr, flip index).

    Args:
        feats: (N, side*side) unit-norm features (`Fingerprints.features`).
        side: thumbnail side of the features.
        gate: lowest correlation kept.
        chunk: rows per matrix product; default keeps each of the ~8 (chunk, N) arrays at 16 MB.
    """
    parts = parity_parts(feats, side)
    n = len(feats)
    chunk = chunk or max(64, min(2048, (1 << 22) // max(n, 1)))
    out: list[tuple[np.ndarray, ...]] = []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        # Rows s..e against columns s..n only: the lower triangle repeats the upper one.
        pp, pm, mp, mm = (p[s:e] @ p[s:].T for p in parts)
        same, hflip, vflip = oriented_products(pp, pm, mp, mm)
        best = np.maximum(np.maximum(same, hflip), vflip)
        best[np.tril_indices(e - s, m=n - s)] = -np.inf  # keep j > i
        best = _keep_top(best, MAX_PER_IMAGE, gate)
        ii, jj = np.nonzero(best >= gate)
        b = best[ii, jj]
        flip = np.where(same[ii, jj] == b, 0, np.where(hflip[ii, jj] == b, 1, 2))
        out.append((ii + s, jj + s, b, flip))
    if not out:
        return tuple(np.zeros(0, dt) for dt in (np.int64, np.int64, np.float32, np.int64))
    return tuple(np.concatenate(col) for col in zip(*out, strict=True))


def nearest_pairs(
    feats: np.ndarray, side: int, k: int, chunk: int | None = None, query: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Each image's k most correlated partners in their best orientation, as unique pairs i < j:
    (i, j, corr, flip index), flip saying how image i is mirrored to match image j (see FLIPS).

    `query`: other features of the same images (a zoomed view, say), row for row; each image's partners are
    then the k whose `feats` correlate best with its `query` row, and corr is that correlation.
    Rows of zero norm (blank frames) get no partners; partners below MIN_CORR are dropped.
    """
    n = len(feats)
    empty = tuple(np.zeros(0, dt) for dt in (np.int64, np.int64, np.float32, np.int64))
    if n < 2 or k <= 0:
        return empty
    k = min(k, n - 1)
    parts = parity_parts(feats, side)
    rows_parts = parts if query is None else parity_parts(query, side)
    live = np.linalg.norm(feats, axis=1) > 0
    asks = live if query is None else live & (np.linalg.norm(query, axis=1) > 0)
    chunk = chunk or max(64, min(2048, (1 << 22) // n))  # ~8 (chunk, n) arrays of 16 MB, as in candidate_pairs
    cols: list[tuple[np.ndarray, ...]] = []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        pp, pm, mp, mm = (r[s:e] @ p.T for r, p in zip(rows_parts, parts, strict=True))
        # As in candidate_pairs: all three orientations of row image s+r against every column image.
        same, hflip, vflip = oriented_products(pp, pm, mp, mm)
        best = np.maximum(np.maximum(same, hflip), vflip)
        best[np.arange(e - s), np.arange(s, e)] = -np.inf
        best[:, ~live] = -np.inf
        top = np.argpartition(-best, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(e - s), k)
        cj = top.ravel()
        b = best[rows, cj]
        flip = np.where(same[rows, cj] == b, 0, np.where(hflip[rows, cj] == b, 1, 2))
        keep = (b >= MIN_CORR) & asks[rows + s]
        cols.append((rows[keep] + s, cj[keep], b[keep].astype(np.float32), flip[keep]))
    i, j, corr, flip = (np.concatenate(c) for c in zip(*cols, strict=True))
    # A pair listed from both ends keeps one entry, written with i < j: the end with the higher corr (with
    # `query` the two ends compare different views); a mirror is its own inverse, so swapping the two
    # images keeps the flip index.
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((-corr, lo * n + hi))
    _, first = np.unique((lo * n + hi)[order], return_index=True)
    first = order[first]
    return lo[first], hi[first], corr[first], flip[first]


def _keep_top(sims: np.ndarray, k: int, gate: float) -> np.ndarray:
    """Set all but the k best entries of rows with more than k entries >= gate to -inf."""
    crowded = np.nonzero((sims >= gate).sum(1) > k)[0]
    for r in crowded:
        drop = np.argpartition(-sims[r], k)[k:]
        sims[r, drop] = -np.inf
    return sims


def _with_byte_duplicates(fp: Fingerprints, feats: np.ndarray, cand: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Add pairs of files with identical bytes (even blank frames, whose feature is zero).

    Up to MAX_PER_IMAGE copies of one file are paired all with all; beyond that (a folder of
    identical blank slices) each copy is paired with the first only, which keeps the same groups.
    """
    by_hash: dict[str, list[int]] = {}
    for idx, h in enumerate(fp.sha1):
        by_hash.setdefault(h, []).append(idx)
    extra = []
    for members in by_hash.values():
        if len(members) > MAX_PER_IMAGE:
            extra += [(members[0], b) for b in members[1:]]
        else:
            extra += [(a, b) for x, a in enumerate(members) for b in members[x + 1 :]]
    if not extra:
        return cand
    ei, ej = (np.array(col, dtype=np.int64) for col in zip(*extra, strict=True))
    ecorr = (feats[ei] * feats[ej]).sum(1)
    i, j, corr, flip = (np.concatenate(x) for x in zip(cand, (ei, ej, ecorr, np.zeros_like(ei)), strict=True))
    _, first = np.unique(i * len(fp.paths) + j, return_index=True)
    return i[first], j[first], corr[first], flip[first]


def _pixel_hash(path: Path, cache: dict[Path, str | None]) -> str | None:
    """SHA-1 of the full-resolution decoded grayscale pixels (and shape); None when unreadable."""
    if path not in cache:
        try:
            px = np.ascontiguousarray(read_scan(path).pixels)
            cache[path] = hashlib.sha1(px.tobytes() + f"{px.dtype}{px.shape}".encode()).hexdigest()
        except ScanReadError:
            cache[path] = None
    return cache[path]


def classify(fp: Fingerprints, th: Thresholds, workers: int | None = None) -> Pairs:
    """Score every candidate pair and give it the strongest kind it qualifies for (or "").

    `workers`: processes for the second look's registrations (default: one per CPU, at most 4).
    """
    gate = min(th.near_corr - th.border, th.copy_corr)
    feats = fp.features()
    i, j, corr, flip = _with_byte_duplicates(fp, feats, candidate_pairs(feats, FEATURE_SIDE, gate))
    in_band = corr >= th.near_corr - th.border
    sc = score_pairs(fp, i, j, flip, blur_needed=lambda sc: in_band & (sc.ssim < th.near_ssim))
    kind = np.full(len(i), "", dtype=object)
    kind[(corr >= th.near_corr) & ((sc.ssim >= th.near_ssim) | (sc.ssim_blur >= th.near_ssim_blur))] = "near"
    copy_level = (corr >= th.copy_corr) & (sc.ssim >= th.copy_ssim) & (sc.mae <= th.copy_mae)
    kind[copy_level & (flip != 0)] = "mirror"
    kind[copy_level & (flip == 0)] = "copy"
    sha = np.array(fp.sha1)
    how = np.full(len(i), "", dtype=object)
    same_bytes = sha[i] == sha[j]
    kind[same_bytes], how[same_bytes] = "exact", "bytes"
    # Identical pixels in different files (a JPEG re-saved with other metadata or exported to PNG,
    # an RGB copy of a gray PNG) can only hide among near-perfect copies: decode just those in full.
    maybe = np.nonzero((kind == "copy") & (sc.ssim >= 0.99) & (sc.mae <= 1.0))[0]
    cache: dict[Path, str | None] = {}
    for q in maybe:
        hi, hj = _pixel_hash(fp.paths[i[q]], cache), _pixel_hash(fp.paths[j[q]], cache)
        if hi is not None and hi == hj:
            kind[q], how[q] = "exact", "pixels"
    pairs = Pairs(i, j, corr, flip, sc.ssim, sc.ssim_blur, sc.mae, kind, how, np.zeros(len(i), bool))
    return _second_look(fp, feats, pairs, th, workers)


def _pair_corrs(feats: np.ndarray, i: np.ndarray, j: np.ndarray, flip: np.ndarray, chunk: int = 1 << 16):
    """(corr in orientation flip, corr unmirrored) of pairs (i[k] mirrored by flip[k], j[k]), from the
    features' parity parts (see `parity_parts`), in chunks."""
    parts = parity_parts(feats, FEATURE_SIDE)
    out = np.zeros((2, len(i)), np.float32)
    for s in range(0, len(i), chunk):
        a, b = i[s : s + chunk], j[s : s + chunk]
        views = oriented_products(*(np.einsum("nd,nd->n", p[a], p[b]) for p in parts))  # in FLIPS order
        out[0, s : s + chunk] = np.choose(flip[s : s + chunk], views)
        out[1, s : s + chunk] = views[0]
    return out[0], out[1]


def _second_look(fp: Fingerprints, feats: np.ndarray, pairs: Pairs, th: Thresholds, workers: int | None) -> Pairs:
    """Register each image with its `th.neighbours` nearest partners, and with the `th.zoom_neighbours`
    nearest partners of each zoomed view of it (ZOOM_SHARES), in the orientation each list found (pairs
    already counted as duplicates are skipped, not replaced by further partners); classify those pairs on
    the aligned crops; pairs that pass are updated or added."""
    if th.neighbours == 0:
        return pairs
    n = len(fp.paths)
    lists = [nearest_pairs(feats, FEATURE_SIDE, th.neighbours)]
    for share in ZOOM_SHARES if th.zoom_neighbours else ():
        query = unit_features(zoomed_crops(fp.crops, share))
        lists.append(nearest_pairs(feats, FEATURE_SIDE, th.zoom_neighbours, query=query))
    ti, tj, tflip = (np.concatenate([x[c] for x in lists]) for c in (0, 1, 3))
    # The head crops' correlation in the orientation listed, and unmirrored: weakly correlated pairs (a
    # heavy crop) may correlate best mirrored by chance, so the orientation as it is gets a try too when it
    # comes close, since unmirrored copies are the common case.
    tcorr, plain = _pair_corrs(feats, ti, tj, tflip)
    again = (tflip != 0) & (plain >= tcorr - PLAIN_MARGIN)
    ti, tj = np.r_[ti, ti[again]], np.r_[tj, tj[again]]
    tflip, tcorr = np.r_[tflip, np.zeros(int(again.sum()), np.int64)], np.r_[tcorr, plain[again]]
    _, once = np.unique((ti * n + tj) * len(FLIPS) + tflip, return_index=True)
    ti, tj, tflip, tcorr = ti[once], tj[once], tflip[once], tcorr[once]
    keys, tries = np.unique(ti * n + tj, return_inverse=True)  # tries[t]: the pair that try t is of
    i, j = keys // n, keys % n
    known = dict(zip((pairs.i * n + pairs.j).tolist(), range(len(pairs)), strict=True))
    pos = np.array([known.get(k, -1) for k in keys.tolist()], dtype=np.int64)
    decided = np.zeros(len(keys), bool)
    decided[pos >= 0] = pairs.kind[pos[pos >= 0]] != ""
    left = ~decided[tries]
    if not left.any():
        return pairs
    tries, tflip, tcorr = tries[left], tflip[left], tcorr[left]
    band = (BLUR_FROM, th.aligned_ssim)
    al = align_scores(fp.crops, i[tries], j[tries], tflip, FEATURE_SIDE, BLUR_SIGMA, band, workers)
    # Per pair, the try that reaches the strongest kind, then the higher SSIM (a failed fit scores 0).
    near = al.ok & ((al.ssim >= th.aligned_ssim) | (al.ssim_blur >= th.aligned_ssim_blur))
    copy_level = al.ok & (al.ssim >= th.aligned_copy_ssim) & (al.mae <= th.copy_mae)
    order = np.lexsort((-al.ssim, -(near.astype(np.int64) + copy_level), tries))
    first = order[np.r_[True, tries[order][1:] != tries[order][:-1]]]
    todo, flip_used, corr_used = tries[first], tflip[first], tcorr[first]
    al, near, copy_level = Aligned(*(x[first] for x in vars(al).values())), near[first], copy_level[first]
    kind = np.where(copy_level, np.where(flip_used != 0, "mirror", "copy"), np.where(near, "near", "")).astype(object)
    hit = np.nonzero(kind != "")[0]
    if len(hit) == 0:
        return pairs
    rows, q = pos[todo[hit]], todo[hit]
    cols = {
        "corr": corr_used[hit],
        "flip": flip_used[hit],
        "ssim": al.ssim[hit],
        "ssim_blur": al.ssim_blur[hit],
        "mae": al.mae[hit],
        "kind": kind[hit],
    }
    update = rows >= 0
    for name, values in cols.items():
        getattr(pairs, name)[rows[update]] = values[update]
    pairs.aligned[rows[update]] = True
    new = ~update
    extra = Pairs(
        i[q[new]],
        j[q[new]],
        cols["corr"][new],
        cols["flip"][new],
        *(cols[name][new] for name in ("ssim", "ssim_blur", "mae", "kind")),
        np.full(int(new.sum()), "", dtype=object),
        np.ones(int(new.sum()), bool),
    )
    return Pairs(**{k: np.concatenate([v, getattr(extra, k)]) for k, v in pairs.__dict__.items()})
