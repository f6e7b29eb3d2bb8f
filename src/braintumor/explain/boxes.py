"""Tumour bounding boxes: the CSV format and the pixel masks scored against.

Format (as `figshare-cheng-3064/tumor_boxes.csv`): a header ``image,label,x_min,y_min,x_max,y_max`` then
one row per scan; `image` is relative to the dataset root, coordinates are pixels of the original scan
(fractions allowed). A pixel at column c, row r is inside when ``x_min <= c <= x_max`` and
``y_min <= r <= y_max`` (both ends included: boxes derived from masks name the outermost tumour pixels).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from braintumor import PATH_ERRORS

COLUMNS = ("image", "label", "x_min", "y_min", "x_max", "y_max")


@dataclass(frozen=True)
class TumorBox:
    """One scan's tumour box, in the original scan's pixels."""

    image: str
    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def mask(self, shape: tuple[int, int], tolerance: float = 0.0) -> np.ndarray:
        """Boolean (H, W) mask of the pixels inside the box grown by `tolerance` pixels on every side."""
        h, w = shape
        cols, rows = np.arange(w), np.arange(h)
        in_x = (cols >= self.x_min - tolerance) & (cols <= self.x_max + tolerance)
        in_y = (rows >= self.y_min - tolerance) & (rows <= self.y_max + tolerance)
        return in_y[:, None] & in_x[None, :]

    def contains(self, x: float, y: float, tolerance: float = 0.0) -> bool:
        """Whether point (x, y) lies inside the box grown by `tolerance` pixels."""
        return (self.x_min - tolerance <= x <= self.x_max + tolerance) and (
            self.y_min - tolerance <= y <= self.y_max + tolerance
        )


def _row_box(row: dict[str, str], where: str) -> TumorBox:
    try:
        coords = [float(row[c]) for c in COLUMNS[2:]]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: coordinates must be numbers, got {[row.get(c) for c in COLUMNS[2:]]}") from None
    if not all(math.isfinite(v) for v in coords):
        raise ValueError(f"{where}: coordinates must be finite numbers, got {coords}")
    x_min, y_min, x_max, y_max = coords
    if x_min > x_max or y_min > y_max:
        raise ValueError(f"{where}: box has x_min > x_max or y_min > y_max ({coords})")
    image = (row.get("image") or "").strip()
    if not image:
        raise ValueError(f"{where}: empty image path")
    return TumorBox(image, (row.get("label") or "").strip(), x_min, y_min, x_max, y_max)


def read_boxes(path: str | Path) -> list[TumorBox]:
    """Read a box CSV (`COLUMNS`, header required).

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing columns, a bad number or an inverted box; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: box file not found")
    with path.open(newline="", encoding="utf-8-sig", errors=PATH_ERRORS) as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected header {','.join(COLUMNS)}")
        boxes = [_row_box(row, f"{path}, line {reader.line_num}") for row in reader]
    if not boxes:
        raise ValueError(f"{path}: no boxes (the file has a header but no rows)")
    return boxes
