"""Heatmaps blended on the grayscale scan, at the scan's own resolution, optionally with a colour bar."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pytorch_grad_cam.utils.image import show_cam_on_image

from braintumor.io import Scan

_COLORBAR_PX = 90  # width added on the right for the colour bar and its labels


def _gray(scan: Scan | np.ndarray) -> np.ndarray:
    pixels = scan.as_uint8() if isinstance(scan, Scan) else np.asarray(scan)
    if pixels.ndim != 2:
        raise ValueError(f"overlay expects a 2-D grayscale scan, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"overlay expects a uint8 array or a Scan, got {pixels.dtype}")
    return pixels


def _with_colorbar(rgb: np.ndarray) -> np.ndarray:
    """The overlay at its own size plus a labelled jet colour bar on the right (matplotlib, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    h, w = rgb.shape[:2]
    dpi = 100
    total = w + _COLORBAR_PX
    fig = Figure(figsize=(total / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, w / total, 1))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    cax = fig.add_axes(((w + 10) / total, 0.1, 18 / total, 0.8))
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), cax=cax)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("relevance", fontsize=7)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def overlay_image(
    scan: Scan | np.ndarray, cam: np.ndarray, *, alpha: float = 0.4, colorbar: bool = False
) -> np.ndarray:
    """Blend a CAM (jet colour map) on the grayscale scan.

    Args:
        scan: the scan the CAM belongs to (a `Scan` or a 2-D uint8 array).
        cam: float (H, W) in [0, 1], the same size as the scan (`Explanation.cam`).
        alpha: weight of the heatmap, 0 (scan only) to 1 (heatmap only).
        colorbar: add a colour bar on the right (the image part keeps the scan's size).

    Returns:
        uint8 RGB (H, W, 3), or (H, W + bar, 3) with a colour bar.

    Raises:
        ValueError: CAM and scan sizes differ, or alpha outside [0, 1].
    """
    gray = _gray(scan)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != gray.shape:
        raise ValueError(f"CAM shape {cam.shape} does not match the scan's {gray.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 0:  # the library divides by the blend's maximum, which is 0 for a black scan
        rgb = np.repeat(gray[..., None], 3, axis=2)
        return _with_colorbar(rgb) if colorbar else rgb
    base = np.repeat(gray[..., None], 3, axis=2).astype(np.float32) / 255.0
    rgb = show_cam_on_image(base, np.clip(cam, 0, 1), use_rgb=True, image_weight=1.0 - alpha)
    return _with_colorbar(rgb) if colorbar else rgb


def overlay_png(scan: Scan | np.ndarray, cam: np.ndarray, *, alpha: float = 0.4, colorbar: bool = False) -> bytes:
    """`overlay_image` encoded as PNG bytes (for files, HTML reports and HTTP responses)."""
    buf = io.BytesIO()
    Image.fromarray(overlay_image(scan, cam, alpha=alpha, colorbar=colorbar)).save(buf, format="PNG")
    return buf.getvalue()
