"""torchvision.transforms.v2 transforms that torchvision lacks: CLAHE, random gamma, random intensity
remapping, per-scan normalisation.

They act on float images in [0, 1] of shape (..., C, H, W) and pass other inputs (labels, boxes)
through, like every v2 transform. Module-level classes with plain attributes, so they pickle to
DataLoader workers.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def _as_image_like(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tv_tensors.wrap(out, like=like) if isinstance(like, tv_tensors.TVTensor) else out


class RandomCLAHE(v2.Transform):
    """Contrast-limited adaptive histogram equalisation (OpenCV) with probability `p`.

    CLAHE mimics the local contrast differences between scanners and sequences without the
    noise blow-up of global histogram equalisation.

    Args:
        p: probability of applying it, 0-1.
        clip_limit: OpenCV clip limit (contrast amplification cap); 1-4 typical.
        tile_grid: tiles per side of the equalisation grid; 4-16 typical.
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def __init__(self, p: float = 1.0, clip_limit: float = 2.0, tile_grid: int = 8) -> None:
        super().__init__()
        self.p, self.clip_limit, self.tile_grid = p, clip_limit, tile_grid

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"apply": torch.rand(()) < self.p}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        # cv2.CLAHE objects do not pickle, so one is made per call (microseconds).
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=(self.tile_grid, self.tile_grid))
        flat = inpt.detach().reshape(-1, *inpt.shape[-2:])
        u8 = (flat.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        eq = np.stack([clahe.apply(np.ascontiguousarray(ch)) for ch in u8])
        out = torch.from_numpy(eq).to(inpt.device, torch.float32).div_(255).reshape(inpt.shape)
        return _as_image_like(out, inpt)


class RandomGamma(v2.Transform):
    """Gamma correction x ** g with g drawn log-uniformly from `gamma` (so 0.8 and 1.25 are equally likely).

    Args:
        gamma: (low, high) range of the exponent; (0.7, 1.5) typical, (1, 1) is off.
        p: probability of applying it, 0-1.
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def __init__(self, gamma: tuple[float, float] = (0.8, 1.25), p: float = 1.0) -> None:
        super().__init__()
        self.gamma, self.p = tuple(gamma), p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        lo, hi = math.log(self.gamma[0]), math.log(self.gamma[1])
        g = math.exp(lo + (hi - lo) * float(torch.rand(())))
        return {"gamma": g if float(torch.rand(())) < self.p else 1.0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["gamma"] == 1.0:
            return inpt
        return _as_image_like(inpt.clamp(0, 1).pow(params["gamma"]), inpt)


class RandomIntensityRemap(v2.Transform):
    """Random piecewise-linear, possibly non-monotonic, intensity curve with probability `p`.

    The same tissue is bright on one MRI sequence and dark on another (CSF: dark on T1, bright on
    T2 and FLAIR), so a model trained on sets where each class comes mostly from one sequence learns
    the sequence instead of the tumour. Remapping intensities through a random curve keeps shapes
    and edges but breaks the link between a class and one intensity profile (the idea behind
    random-contrast augmentation such as SynthSeg's and GIN's). Black stays black (0 maps to 0), so
    the background and the head outline are kept.

    Args:
        p: probability of applying it, 0-1.
        points: number of interior knots of the curve (evenly spaced in [0, 1], each with a value
            drawn uniformly from [0, 1], plus a knot at 1); 2-5 typical, more is wilder.
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def __init__(self, p: float = 1.0, points: int = 3) -> None:
        super().__init__()
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        self.p, self.points = p, points

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return {"values": None}
        return {"values": torch.cat([torch.zeros(1), torch.rand(self.points + 1)])}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        values = params["values"]
        if values is None:
            return inpt
        values = values.to(inpt.device)
        segments = len(values) - 1
        pos = inpt.clamp(0, 1) * segments
        idx = pos.floor().clamp_max(segments - 1).long()
        frac = pos - idx
        out = values[idx] + frac * (values[idx + 1] - values[idx])
        return _as_image_like(out, inpt)


class PercentileNormalize(v2.Transform):
    """Rescale each image so its `low`-th percentile maps to 0 and its `high`-th to 1, clipped to [0, 1].

    Deterministic. MRI intensities have no absolute scale (they differ by scanner, sequence and
    export); scaling by the image's own percentiles removes that while ignoring a few hot pixels.
    Constant images are returned unchanged.

    Args:
        low: lower percentile, 0-10 typical.
        high: upper percentile, 90-100 typical.
    """

    _transformed_types = (tv_tensors.Image, torch.Tensor)

    def __init__(self, low: float = 1.0, high: float = 99.0) -> None:
        super().__init__()
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
        self.low, self.high = low, high

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        flat = inpt.reshape(-1, inpt.shape[-2] * inpt.shape[-1]).float()
        q = torch.quantile(flat, torch.tensor([self.low / 100, self.high / 100]), dim=1, keepdim=True)
        span = q[1] - q[0]
        scaled = ((flat - q[0]) / span.clamp_min(1e-6)).clamp(0, 1)
        out = torch.where(span > 1e-6, scaled, flat).reshape(inpt.shape)
        return _as_image_like(out, inpt)
