"""Inference: the Predictor (PyTorch or ONNX Runtime), the input gate, the OOD check and ONNX export.

`load_predictor(model, backend=...)` builds the one Predictor the CLI and the web service share;
`read_input` reads a path or uploaded bytes without raising for bad files.
"""

from braintumor.inference.export import export_onnx, read_contract
from braintumor.inference.inputs import ScanInput, expand_sources, read_input
from braintumor.inference.loading import BACKENDS, load_predictor
from braintumor.inference.ood import OODDetector, load_ood, ood_paths
from braintumor.inference.ood_fit import fit_ood
from braintumor.inference.predictor import Prediction, Predictor

__all__ = [
    "BACKENDS",
    "OODDetector",
    "Prediction",
    "Predictor",
    "ScanInput",
    "expand_sources",
    "export_onnx",
    "fit_ood",
    "load_ood",
    "load_predictor",
    "ood_paths",
    "read_contract",
    "read_input",
]
