"""Run a batch through the network: PyTorch eager or ONNX Runtime, both returning (logits, features).

`features` are the penultimate activations, the input of the network's final linear layer (every model in
the registry ends in exactly one `nn.Linear`); the out-of-distribution check measures distances there.
With a `stats_layer`, each row also carries the per-channel mean and standard deviation of that
intermediate layer's output (`LogitsAndFeatures`): image statistics the penultimate layer has learnt to
ignore, which is what tells a face or a page of text from a scan.
One forward pass at a time per backend: each pass already uses every core (intra-op threads), so running
two at once would only make both slower and double the memory; callers may still decode in parallel.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from braintumor.models.head import LogitsAndFeatures


class Backend(Protocol):
    """What the Predictor needs from an engine."""

    name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, K), features (N, D)) of a float32 batch (N, C, S, S)."""
        ...


def cpu_count() -> int:
    """CPU cores this process may use (the affinity mask, which containers restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class TorchBackend:
    """PyTorch eager inference on CPU (or the model's device), under `torch.inference_mode`.

    Args:
        model: a network in eval mode.
        threads: intra-op threads; None keeps torch's default (one per physical core). This is process-wide.
        stats_layer: add that layer's per-channel mean and std to the features (see `LogitsAndFeatures`).
        channels_last: use the NHWC memory format, which oneDNN convolutions often run faster on CPU;
            `benchmarks/inference_speed.py --channels-last` measures whether it helps a given model.
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        *,
        threads: int | None = None,
        channels_last: bool = False,
        stats_layer: str | None = None,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        model = model.eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        # the same split the ONNX export traces: (logits, penultimate features [+ the layer's statistics])
        self.net = LogitsAndFeatures(model, stats_layer).eval()
        self.device = next(self.net.parameters()).device
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            logits, features = self.net(x)
        return logits.float().cpu().numpy(), features.float().cpu().numpy()


def session_options(threads: int | None = None):  # -> onnxruntime.SessionOptions (lazy import)
    """ONNX Runtime options for CPU serving: all graph optimisations, intra-op threads = cores, no spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or cpu_count()
    opts.inter_op_num_threads = 1
    # Busy-waiting threads keep idle cores at 100 % between requests and starve the decoding threads.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: the optimiser's notes are noise for users
    return opts


class OnnxBackend:
    """ONNX Runtime (CPU execution provider) on a model written by `braintumor export`.

    Args:
        path: the `.onnx` file; its graph has input "input" and outputs "logits" and "features".
        threads: intra-op threads (default: the cores this process may use).
    """

    name = "onnx"

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs[:2] != ["logits", "features"]:
            raise ValueError(f"{path}: not a braintumor ONNX export (outputs {outputs}); re-run `braintumor export`")
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()

    def check_contract(self, path: str | Path, in_chans: int, image_size: int, num_classes: int) -> None:
        """Refuse a graph whose input or output shape disagrees with its contract (a hand-edited file).

        Raises:
            ValueError: naming both shapes; ONNX Runtime would otherwise fail only at the first prediction.
        """
        shape = self.session.get_inputs()[0].shape
        logits = self.session.get_outputs()[0].shape
        want = [in_chans, image_size, image_size]
        if list(shape[1:]) != want or logits[-1] != num_classes:
            raise ValueError(
                f"{path}: the graph takes {shape[1:]} and gives {logits[-1]} scores, but its contract says "
                f"{want} and {num_classes} classes; re-run `braintumor export`"
            )

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            logits, features = self.session.run(["logits", "features"], {self.input_name: x})
        return np.asarray(logits, dtype=np.float32), np.asarray(features, dtype=np.float32).reshape(len(x), -1)
