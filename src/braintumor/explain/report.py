"""Run the localisation scoring over a dataset and its box CSV (what `braintumor explain --boxes` does)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from braintumor.explain.boxes import TumorBox, read_boxes
from braintumor.explain.cam import Explainer
from braintumor.explain.localization import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CENTRE_SIGMA,
    DEFAULT_TOLERANCE_PX,
    scan_scores,
    summarise,
)
from braintumor.io import ScanReadError, read_scan

# Class names that mean "no tumour" in public MRI sets; compared ignoring case, spaces, '_' and '-'.
DEFAULT_NORMAL_CLASSES = ("notumor", "no_tumor", "no", "normal", "healthy")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def normal_classes(class_names: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """The model's classes that count as "no tumour".

    Args:
        class_names: the model's classes.
        names: user-given names; None uses `DEFAULT_NORMAL_CLASSES` (those the model lacks are ignored).

    Raises:
        ValueError: a user-given name is not one of the model's classes (a typo would otherwise score
            every "no tumour" prediction as a tumour).
    """
    if names is not None:
        known = {_key(c) for c in class_names}
        unknown = [n for n in names if _key(n) not in known]
        if unknown:
            raise ValueError(
                f"--normal-class {', '.join(unknown)}: not a class of the model ({', '.join(class_names)})"
            )
    wanted = {_key(n) for n in (DEFAULT_NORMAL_CLASSES if names is None else names)}
    return [c for c in class_names if _key(c) in wanted]


def _check_box(box: TumorBox, shape: tuple[int, int]) -> str | None:
    h, w = shape
    if not box.mask(shape).any():
        return f"box ({box.x_min:g}, {box.y_min:g})-({box.x_max:g}, {box.y_max:g}) covers no pixel of the {w}x{h} scan"
    return None


def _score_one(explainer: Explainer, data: Path, box: TumorBox, normal: set[str], tolerance: float) -> dict:
    """One scan's row: scores, or {"skip": "normal"}, or {"error": message}."""
    try:
        scan = read_scan(data / box.image)
    except ScanReadError as exc:
        return {"image": box.image, "error": str(exc)}
    problem = _check_box(box, scan.shape)
    if problem:
        return {"image": box.image, "error": f"{data / box.image}: {problem}"}
    exp = explainer.explain(scan)
    row = {"image": box.image, "label": box.label, "predicted": exp.predicted_label, "peak": exp.peak}
    if exp.predicted_label in normal:
        return {**row, "skip": "normal"}
    return {**row, "empty_cam": exp.peak is None, **scan_scores(exp.cam, box, tolerance)}


def localization_report(
    explainer: Explainer,
    data: str | Path,
    boxes: str | Path | list[TumorBox],
    *,
    normal: Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE_PX,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Score the CAMs of the scans the model calls tumours against their boxes.

    Args:
        explainer: explains with the model and method to score (the CAM targets the predicted class).
        data: dataset root the box CSV's image paths are relative to.
        boxes: the box CSV or its rows (`read_boxes`).
        normal: class names meaning "no tumour" (see `normal_classes`); scans predicted as one are not scored.
        tolerance: pointing-game tolerance in pixels of the original scan.
        limit: score only the first `limit` boxes (quick checks).
        progress: show a progress bar.

    Returns:
        A JSON-ready dict: counts, `pointing_game` and `energy_inside_box` (mean and 95 % CI for the model
        and both baselines), `per_label`, `errors` (image, message) and per-scan `scans` rows.
    """
    data = Path(data)
    if not data.is_dir():
        raise NotADirectoryError(f"{data}: dataset folder not found")
    rows_in = read_boxes(boxes) if isinstance(boxes, (str, Path)) else list(boxes)
    rows_in = rows_in[:limit] if limit is not None else rows_in
    normal_names = normal_classes(explainer.class_names, normal)
    results = [
        _score_one(explainer, data, b, set(normal_names), tolerance)
        for b in tqdm(rows_in, desc="localisation", unit="scan", disable=not progress)
    ]
    scored = [r for r in results if "error" not in r and "skip" not in r]
    return {
        "data": str(data),
        "arch": explainer.loaded.arch,
        "class_names": explainer.class_names,
        "method": explainer.method,
        "layer": explainer.layer_name,
        "target": "predicted class",
        "tolerance_px": tolerance,
        "centre_sigma_frac": CENTRE_SIGMA,
        "bootstrap": {"method": "percentile", "n_resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED},
        "normal_classes": normal_names,
        "n_boxes": len(rows_in),
        "n_scored": len(scored),
        "n_called_normal": sum("skip" in r for r in results),
        "n_errors": sum("error" in r for r in results),
        "n_empty_cam": sum(bool(r["empty_cam"]) for r in scored),
        **summarise(scored),
        "errors": [{"image": r["image"], "error": r["error"]} for r in results if "error" in r],
        "scans": [r for r in results if "error" not in r],
    }
