"""Does the CAM point at the tumour? Pointing game and energy-in-box, beside two baselines, with bootstrap CIs.

Per scan (all in the original scan's pixels):

- pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016): a hit when
  the CAM's maximum lies inside the tumour box grown by `tolerance` pixels on every side (15 px, as there).
- energy share: the CAM's sum inside the (ungrown) box divided by its total sum.

Baselines scored on the same scans: a uniform map, whose peak is undefined, so its hit rate is the chance
that a random point falls in the grown box (grown-box area / image area) and its energy share is
box area / image area; and an image-centre prior, a Gaussian centred on the image with a standard
deviation of `CENTRE_SIGMA` times each side, whose peak is the image centre. An empty CAM (all zeros)
counts as a miss with zero energy in the box, and is counted in `n_empty_cam`.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.stats import bootstrap

from braintumor.explain.boxes import TumorBox

DEFAULT_TOLERANCE_PX = 15.0  # pointing-game tolerance of Zhang et al. (2016), pixels of the original scan
CENTRE_SIGMA = 0.25  # centre baseline's Gaussian standard deviation, as a fraction of each image side
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
SOURCES = ("model", "uniform", "centre")


def pointing_hit(cam: np.ndarray, box: TumorBox, tolerance: float = DEFAULT_TOLERANCE_PX) -> bool:
    """Whether the CAM's maximum (first one in row-major order) lies in the box grown by `tolerance`."""
    if not cam.any():
        return False
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return box.contains(float(x), float(y), tolerance)


def energy_share(cam: np.ndarray, box: TumorBox) -> float:
    """Share of the CAM's total inside the box (0 for an empty CAM)."""
    total = float(cam.sum(dtype=np.float64))
    if total <= 0:
        return 0.0
    return float(cam[box.mask(cam.shape)].sum(dtype=np.float64) / total)


@functools.lru_cache(maxsize=8)
def centre_map(shape: tuple[int, int], sigma_frac: float = CENTRE_SIGMA) -> np.ndarray:
    """The centre-prior baseline: a Gaussian centred on the image, sigma = `sigma_frac` x side, peak 1."""
    h, w = shape
    ys = np.exp(-0.5 * ((np.arange(h) - (h - 1) / 2) / (sigma_frac * h)) ** 2)
    xs = np.exp(-0.5 * ((np.arange(w) - (w - 1) / 2) / (sigma_frac * w)) ** 2)
    out = (ys[:, None] * xs[None, :]).astype(np.float32)
    out.flags.writeable = False  # shared between calls through the cache
    return out


def scan_scores(cam: np.ndarray, box: TumorBox, tolerance: float = DEFAULT_TOLERANCE_PX) -> dict[str, float]:
    """Hit (0/1) and energy share of the CAM and of both baselines for one scan."""
    h, w = cam.shape
    return {
        "model_hit": float(pointing_hit(cam, box, tolerance)),
        "model_energy": energy_share(cam, box),
        "uniform_hit": float(box.mask(cam.shape, tolerance).mean()),
        "uniform_energy": float(box.mask(cam.shape).mean()),
        "centre_hit": float(box.contains((w - 1) / 2, (h - 1) / 2, tolerance)),
        "centre_energy": energy_share(centre_map((h, w)), box),
    }


def bootstrap_ci(
    values: np.ndarray | list[float], *, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of the mean; None for fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    if np.all(v == v[0]):  # every resample has the same mean; scipy would warn about degenerate data
        return float(v[0]), float(v[0])
    res = bootstrap(
        (v,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _stat(values: list[float]) -> dict:
    ci = bootstrap_ci(values)
    return {"mean": float(np.mean(values)) if values else None, "ci95": list(ci) if ci else None}


def summarise(rows: list[dict]) -> dict:
    """Means and 95 % CIs of hit rate and energy share, per source, over per-scan `scan_scores` rows."""
    out: dict = {"pointing_game": {}, "energy_inside_box": {}}
    for source in SOURCES:
        out["pointing_game"][source] = _stat([r[f"{source}_hit"] for r in rows])
        out["energy_inside_box"][source] = _stat([r[f"{source}_energy"] for r in rows])
    labels = sorted({r["label"] for r in rows})
    out["per_label"] = {
        label: {
            "n": len(sub),
            "hit_rate": float(np.mean([r["model_hit"] for r in sub])),
            "energy_share": float(np.mean([r["model_energy"] for r in sub])),
        }
        for label in labels
        for sub in [[r for r in rows if r["label"] == label]]
    }
    return out


def _cell(stat: dict) -> str:
    if stat["mean"] is None:
        return "-"
    ci = stat["ci95"]
    return f"{stat['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def format_table(report: dict) -> str:
    """A plain-text table of a `localization_report` result, for the terminal."""
    head = (
        f"{report['n_scored']} scans called tumour scored, of {report['n_boxes']} boxes "
        f"({report['n_called_normal']} called {'/'.join(report['normal_classes']) or 'normal'}, "
        f"{report['n_errors']} unreadable or bad boxes, {report['n_empty_cam']} empty CAMs); "
        f"{report['method']} on {report.get('layer') or '?'}, pointing tolerance {report['tolerance_px']:g} px, "
        "95 % bootstrap CIs"
    )
    lines = [head, f"{'':24}{'model':>26}{'uniform map':>26}{'image centre':>26}"]
    for key, title in (("pointing_game", "pointing-game hit rate"), ("energy_inside_box", "CAM energy in box")):
        cells = "".join(f"{_cell(report[key][s]):>26}" for s in SOURCES)
        lines.append(f"{title:24}{cells}")
    for label, s in report["per_label"].items():
        lines.append(f"  {label:22}n={s['n']:<6} hit rate {s['hit_rate']:.3f}  energy {s['energy_share']:.3f}")
    return "\n".join(lines)
