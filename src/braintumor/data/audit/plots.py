"""Picture grids of audited pairs, so a person can check the audit's decisions by eye."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from braintumor.data.audit.features import gray8
from braintumor.io import ScanReadError, read_scan

PAIRS_PER_ROW = 3
DISPLAY_SIDE = 256  # longest side of a displayed image: enough to judge a copy, light enough for 12 pairs


@dataclass(frozen=True)
class PairPicture:
    """Two images side by side (evaluation side left) and what to print under them."""

    left: np.ndarray
    right: np.ndarray
    left_name: str
    right_name: str
    caption: str


def load_for_display(path: Path) -> np.ndarray:
    """Grayscale uint8, longest side at most DISPLAY_SIDE; a gray placeholder when unreadable."""
    try:
        px = gray8(read_scan(path, reduce_to=DISPLAY_SIDE).pixels)
    except ScanReadError:
        return np.full((64, 64), 128, np.uint8)
    scale = DISPLAY_SIDE / max(px.shape)
    if scale < 1:
        px = cv2.resize(px, (round(px.shape[1] * scale), round(px.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return px


def pair_grid(pictures: list[PairPicture], title: str) -> Figure:
    """A figure of the pairs, PAIRS_PER_ROW per row, each with its caption below; never writes a file."""
    n_rows = max(1, -(-len(pictures) // PAIRS_PER_ROW))
    fig = Figure(figsize=(PAIRS_PER_ROW * 4.4, n_rows * 3.0 + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=10)
    cells = fig.subfigures(n_rows, PAIRS_PER_ROW, squeeze=False, wspace=0.03, hspace=0.02)
    if not pictures:
        cells[0, 0].text(0.05, 0.5, "no pairs of this kind", fontsize=10)
    for cell, pic in zip(cells.flat, pictures, strict=False):
        axes = cell.subplots(1, 2)
        for ax, img, name in ((axes[0], pic.left, pic.left_name), (axes[1], pic.right, pic.right_name)):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(_shorten(name), fontsize=6.5)
            ax.set_axis_off()
        cell.supxlabel(pic.caption, fontsize=7)
    return fig


def _shorten(name: str, width: int = 38) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]
