"""The Predictor: scans in, calibrated predictions out, shared by `braintumor predict` and the web service.

Every scan goes through the model's own `ScanPipeline` (the preprocessing it was trained with), then a
backend (PyTorch or ONNX Runtime) gives logits and penultimate features; probabilities are
softmax(logits / temperature). Before the model, a cheap gate refuses colour photos and blank images;
after it, the out-of-distribution check (when a detector is stored beside the checkpoint) refuses scans
unlike the training data. A refused input gets `in_distribution: false` and no label: no tumour claim.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.pipeline import ScanPipeline
from braintumor.inference.backends import Backend, OnnxBackend, TorchBackend
from braintumor.inference.gate import blank_refusal
from braintumor.inference.inputs import ScanInput
from braintumor.io import Scan
from braintumor.models.head import softmax
from braintumor.models.ood import OODDetector

OOD_REFUSAL = (
    "this image is unlike the brain MRI scans the model was trained on (out-of-distribution check); "
    "no prediction is made"
)


@dataclass
class Prediction:
    """The result for one input (the JSON object of `braintumor predict --format json` and the API).

    Attributes:
        file: the input's name (path or uploaded file name).
        label: predicted class, or None when the input was refused or could not be read.
        probabilities: class -> calibrated probability; empty when no prediction is made.
        confidence: probability of `label`, or None.
        in_distribution: False when the input was refused (colour photo, blank, out-of-distribution check) or
            could not be read; True otherwise, and always True for readable scans when no OOD detector is stored.
        error: why the file could not be read, or None.
        ood_score: Mahalanobis distance to the training data, when the check is available.
        note: why the input was refused, or None.
        caveat: the model's known weakness for the predicted class, from its sidecar's `caveats`
            (for example, the shipped model's "notumor" answers on non-T1-CE scans), or None.
    """

    file: str
    label: str | None = None
    probabilities: dict[str, float] | None = None
    confidence: float | None = None
    in_distribution: bool = True
    error: str | None = None
    ood_score: float | None = None
    note: str | None = None
    caveat: str | None = None

    def __post_init__(self) -> None:
        if self.probabilities is None:
            self.probabilities = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Predictor:
    """Predict class probabilities of scans with one model; build it once (see `load_predictor`).

    Args:
        backend: the engine (`TorchBackend` or `OnnxBackend`).
        pipeline: the model's scan -> tensor pipeline.
        class_names: output index -> class name.
        temperature: calibration temperature.
        ood: the out-of-distribution detector, or None when the checkpoint has none (check unavailable).
        card: what is known about the model (shown by `GET /api/v1/model`).
        batch_size: scans per forward pass.
        checkpoint: the checkpoint path, used to build a Grad-CAM explainer on demand.
        caveats: class -> a known weakness of the model for that answer, attached to each prediction of it.
    """

    def __init__(
        self,
        backend: Backend,
        pipeline: ScanPipeline,
        class_names: Sequence[str],
        temperature: float,
        *,
        ood: OODDetector | None = None,
        card: dict[str, Any] | None = None,
        batch_size: int = 32,
        checkpoint: Path | None = None,
        caveats: dict[str, str] | None = None,
    ) -> None:
        self.backend, self.pipeline = backend, pipeline
        self.class_names = list(class_names)
        self.temperature = float(temperature)
        self.ood = ood
        self.card = dict(card or {})
        self.batch_size = max(1, int(batch_size))
        self.checkpoint = checkpoint
        self.caveats = dict(caveats or {})
        self._explainer: Any = None
        self._explainer_lock = threading.Lock()

    @property
    def ood_available(self) -> bool:
        return self.ood is not None

    def predict_scans(self, scans: Sequence[Scan]) -> list[Prediction]:
        """Predict already-read scans (the blank-image gate and the OOD check apply; the colour gate needs
        the file's bytes, see `predict_inputs` and `read_input`)."""
        return self.predict_inputs([ScanInput(s.source, s) for s in scans])

    def predict_inputs(self, inputs: Sequence[ScanInput]) -> list[Prediction]:
        """Predict many inputs in batches; unreadable or refused inputs get their own result, in order."""
        results: list[Prediction | None] = [None] * len(inputs)
        todo: list[tuple[int, np.ndarray]] = []
        for i, item in enumerate(inputs):
            tensor, result = self._prepare(item)
            if result is not None:
                results[i] = result
            else:
                todo.append((i, tensor))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = np.stack([t for _, t in chunk])
            for (i, _), pred in zip(chunk, self._predict_batch(batch, [inputs[i].name for i, _ in chunk]), strict=True):
                results[i] = pred
        return [r for r in results if r is not None]

    def _prepare(self, item: ScanInput) -> tuple[np.ndarray | None, Prediction | None]:
        """The model input of one scan, or the finished result of an input that will not reach the model."""
        if item.error is not None or item.scan is None:
            return None, Prediction(item.name, in_distribution=False, error=item.error or "no scan")
        refusal = item.refusal or blank_refusal(item.scan.as_uint8())
        if refusal:
            return None, Prediction(item.name, in_distribution=False, note=refusal)
        try:
            return self.pipeline(item.scan).numpy(), None
        except ValueError as exc:  # preprocessing refuses odd arrays with a ValueError naming the problem
            return None, Prediction(item.name, in_distribution=False, error=f"cannot preprocess the scan ({exc})")

    def _predict_batch(self, batch: np.ndarray, names: list[str]) -> list[Prediction]:
        logits, features = self.backend.run(batch)
        probs = softmax(logits, self.temperature)
        scores, inside = (None, np.ones(len(batch), bool)) if self.ood is None else self.ood.in_distribution(features)
        out = []
        for j, name in enumerate(names):
            score = None if scores is None else round(float(scores[j]), 4)
            if not inside[j]:
                out.append(Prediction(name, in_distribution=False, ood_score=score, note=OOD_REFUSAL))
                continue
            k = int(np.argmax(probs[j]))
            probabilities = {c: float(p) for c, p in zip(self.class_names, probs[j], strict=True)}
            label = self.class_names[k]
            caveat = self.caveats.get(label)
            out.append(Prediction(name, label, probabilities, float(probs[j, k]), ood_score=score, caveat=caveat))
        return out

    @property
    def cam_layer(self) -> str | None:
        """The layer class activation maps hook by default (None for an architecture not in the registry)."""
        from braintumor.models import list_models, model_info

        arch = self.card.get("arch")
        return model_info(arch).gradcam_layer if arch in list_models() else None

    def explain_png(
        self, scan: Scan, *, target: str | None = None, method: str | None = None, colorbar: bool = False
    ) -> tuple[bytes, Any]:
        """CAM overlay (PNG bytes at the scan's size; `method` None = the explainer's default) and the Explanation.

        Raises:
            ValueError: no PyTorch checkpoint to explain with, or an unknown target class or method.
        """
        from braintumor.explain.overlay import overlay_png

        explanation = self._get_explainer().explain(scan, target=target, method=method)
        return overlay_png(scan, explanation.cam, colorbar=colorbar), explanation

    def _get_explainer(self) -> Any:
        # Built on first use: the explainer keeps its own copy of the network (see braintumor.explain.cam).
        with self._explainer_lock:  # two first requests at once must not build two copies
            if self._explainer is None:
                if self.checkpoint is None:
                    raise ValueError("Grad-CAM needs the PyTorch checkpoint; this model was loaded from an ONNX file")
                from braintumor.explain.cam import Explainer
                from braintumor.models import load_model

                self._explainer = Explainer(load_model(self.checkpoint))
            return self._explainer


__all__ = ["OOD_REFUSAL", "OnnxBackend", "Prediction", "Predictor", "TorchBackend", "softmax"]
