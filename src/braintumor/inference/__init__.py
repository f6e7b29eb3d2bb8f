"""Inference: the Predictor (PyTorch or ONNX Runtime), the input gate and ONNX export.

`load_predictor(model, backend=...)` builds the one Predictor the CLI and the web service share;
`read_input` reads a path or uploaded bytes without raising for bad files.
"""

from braintumor.inference.export import export_onnx, read_contract
from braintumor.inference.inputs import ACCEPTED_FORMATS, ScanInput, expand_sources, read_input
from braintumor.inference.loading import BACKENDS, load_predictor
from braintumor.inference.predictor import Prediction, Predictor

__all__ = [
    "ACCEPTED_FORMATS",
    "BACKENDS",
    "Prediction",
    "Predictor",
    "ScanInput",
    "expand_sources",
    "export_onnx",
    "load_predictor",
    "read_contract",
    "read_input",
]
