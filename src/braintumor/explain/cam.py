"""LayerCAM, Grad-CAM and Grad-CAM++ on a trained checkpoint, mapped back onto the original scan.

The CAM arithmetic is pytorch-grad-cam's; this module adds what the project needs around it: the
model's own preprocessing (`ScanPipeline`), the registry's target layer, calibrated probabilities,
hooks that never outlive a call, and the inverse of the preprocessing so the map lines up with the
scan the user gave.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from braintumor import CAM_METHODS
from braintumor.data.pipeline import ScanPipeline
from braintumor.data.preprocess import Box
from braintumor.explain.geometry import cam_to_original
from braintumor.io import Scan
from braintumor.models import LoadedModel, gradcam_layer, model_info

# LayerCAM (Jiang et al., IEEE TIP 2021) weighs each activation by its own positive gradient instead of one
# weight per channel, so it stays faithful on the earlier, finer layers where Grad-CAM's channel averages wash
# out. On the shipped model it is the default because it points at the tumour far more often (MODEL_CARD.md,
# "Where it looks"); Grad-CAM and Grad-CAM++ remain for comparison with the literature.
METHODS: dict[str, type[BaseCAM]] = dict(zip(CAM_METHODS, (LayerCAM, GradCAM, GradCAMPlusPlus), strict=True))
DEFAULT_METHOD = CAM_METHODS[0]


@dataclass(frozen=True)
class Explanation:
    """One scan's class activation map and the prediction it explains.

    Attributes:
        cam: float32 (H, W) in [0, 1] at the original scan's size and position; 0 outside the head crop.
        method: a name from `METHODS`.
        predicted: index of the predicted class.
        target: index of the class the map explains (the predicted one unless another was asked for).
        class_names: output index -> class name.
        probabilities: class name -> calibrated probability (logits divided by the checkpoint's temperature).
        crop_box: (x0, y0, x1, y1) region of the scan the model saw, exclusive ends.
    """

    cam: np.ndarray
    method: str
    predicted: int
    target: int
    class_names: tuple[str, ...]
    probabilities: dict[str, float]
    crop_box: Box

    @property
    def predicted_label(self) -> str:
        return self.class_names[self.predicted]

    @property
    def target_label(self) -> str:
        return self.class_names[self.target]

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probabilities[self.predicted_label]

    @property
    def peak(self) -> tuple[int, int] | None:
        """(x, y) of the CAM's maximum in original pixels, or None when the map is empty (all zeros)."""
        if not self.cam.any():
            return None
        y, x = np.unravel_index(int(np.argmax(self.cam)), self.cam.shape)
        return int(x), int(y)


def check_method(method: str) -> str:
    """Return `method` if it is a known CAM method, else raise ValueError listing the known ones."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method '{method}'; choose one of: {', '.join(METHODS)}")
    return method


@contextlib.contextmanager
def _cam(method: str, model: torch.nn.Module, layer: torch.nn.Module) -> Iterator[BaseCAM]:
    """A CAM object whose hooks are removed on leaving, whatever happens.

    pytorch-grad-cam's own `__exit__` removes the hooks but also swallows IndexError (printing it), which
    would hide a bad class index; calling it with no exception keeps the cleanup and lets errors through.
    """
    cam = METHODS[method](model=model, target_layers=[layer])
    try:
        yield cam
    finally:
        cam.__exit__(None, None, None)


class Explainer:
    """Explains many scans with one checkpoint; build it once, call `explain` per scan.

    The explainer works on its own copy of the network: Grad-CAM hooks on a module fire for every forward
    pass through it, so sharing the network with a `Predictor` serving other requests would mix their
    activations into the map. Calls are serialised by a lock for the same reason, and every call removes
    its hooks and frees its gradients before returning, so memory does not grow with the number of calls.

    Args:
        loaded: a checkpoint from `braintumor.models.load_model`.
        method: default method, a name from `METHODS`.
        layer: module path of the layer to hook (as `nn.Module.get_submodule` takes it, e.g. ``"blocks.10"``);
            None uses the architecture's registered CAM layer.

    Raises:
        ValueError: unknown method, or a layer path the network does not have.
    """

    def __init__(self, loaded: LoadedModel, *, method: str = DEFAULT_METHOD, layer: str | None = None) -> None:
        self.loaded = loaded
        self.method = check_method(method)
        self.pipeline = ScanPipeline.for_model(loaded)
        self.model = copy.deepcopy(loaded.model).eval()
        self.layer = gradcam_layer(self.model, layer)
        self.layer_name = layer or model_info(loaded.arch).gradcam_layer
        self.device = next(self.model.parameters()).device
        self._lock = threading.Lock()

    @property
    def class_names(self) -> list[str]:
        return list(self.loaded.class_names)

    def class_index(self, target: int | str | None) -> int | None:
        """Index of a class given by index or name (None stays None); ValueError naming the classes otherwise."""
        names = self.loaded.class_names
        if target is None:
            return None
        if isinstance(target, str) and target in names:
            return names.index(target)
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= target < len(names):
            return int(target)
        raise ValueError(f"unknown target class {target!r}; the model's classes are: {', '.join(names)}")

    def explain(
        self, scan: Scan | np.ndarray, *, target: int | str | None = None, method: str | None = None
    ) -> Explanation:
        """Class activation map of one scan, at the scan's original size.

        Args:
            scan: a `Scan` from `braintumor.io.read_scan`, or a 2-D uint8 array.
            target: class to explain, by index or name; None explains the predicted class.
            method: a name from `METHODS`; None uses the explainer's default.

        Returns:
            The map, the prediction and the calibrated probabilities.

        Raises:
            ValueError: unknown target or method, or an array that is not 2-D uint8.
        """
        method = check_method(method or self.method)
        index = self.class_index(target)
        pixels = scan.as_uint8() if isinstance(scan, Scan) else scan
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise ValueError("explain expects a Scan or a 2-D uint8 array")
        box = self.pipeline.preprocess.crop_box(pixels)
        x = self.pipeline(pixels).unsqueeze(0).to(self.device)
        cam_square, logits = self._run(x, index, method)
        probs = torch.softmax(logits.double() / self.loaded.temperature, dim=0).numpy()
        predicted = int(np.argmax(probs))
        names = tuple(self.loaded.class_names)
        return Explanation(
            cam=cam_to_original(cam_square, pixels.shape, box),
            method=method,
            predicted=predicted,
            target=predicted if index is None else index,
            class_names=names,
            probabilities={n: float(p) for n, p in zip(names, probs, strict=True)},
            crop_box=box,
        )

    def _run(self, x: torch.Tensor, index: int | None, method: str) -> tuple[np.ndarray, torch.Tensor]:
        """One forward + backward pass: (CAM on the model input, logits)."""
        targets = None if index is None else [ClassifierOutputTarget(index)]
        # The input needs a gradient path even when the caller froze the weights or runs under no_grad.
        x = x.detach().requires_grad_(True)
        with self._lock, torch.enable_grad(), _cam(method, self.model, self.layer) as cam:
            try:
                grayscale = cam(input_tensor=x, targets=targets)[0]
                logits = cam.outputs.detach()[0].float().cpu()
            finally:
                cam.outputs = None  # drops the autograd graph the CAM object keeps alive
                self.model.zero_grad(set_to_none=True)
        return grayscale, logits


def explain_scan(
    loaded: LoadedModel, scan: Scan | np.ndarray, *, method: str = DEFAULT_METHOD, target: int | str | None = None
) -> Explanation:
    """Explain one scan (a one-off convenience; make one `Explainer` for many scans).

    Args:
        loaded: a checkpoint from `braintumor.models.load_model`.
        scan: a `Scan` from `braintumor.io.read_scan`, or a 2-D uint8 array.
        method: a name from `METHODS`.
        target: class to explain, by index or name; None explains the predicted class.

    Returns:
        The CAM at the scan's original size, the predicted and target classes, and the probabilities.
    """
    return Explainer(loaded, method=method).explain(scan, target=target)
