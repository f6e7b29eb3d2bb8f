"""Run a batch through the network: PyTorch eager or ONNX Runtime, both returning (logits, features).

`features` are the penultimate activations, the input of the network's final linear layer (every model in
the registry ends in exactly one `nn.Linear`); the out-of-distribution check measures distances there.
One forward pass at a time per backend: each pass already uses every core (intra-op threads), so running
two at once would only make both slower and double the memory; callers may still decode in parallel.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn


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


def final_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """(module path, layer) of the network's last `nn.Linear`: its input is the penultimate feature vector.

    Raises:
        ValueError: the network has no linear layer.
    """
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.Linear head; penultimate features are undefined")
    return found[-1]


def split_at_head(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """(body, head): a copy of `model` whose final linear layer is an identity, and that layer.

    `head(flatten(body(x)))` equals `model(x)`; `body` gives the penultimate features. `model` is untouched.
    """
    body = copy.deepcopy(model).eval()
    name, head = final_linear(body)
    parent, _, child = name.rpartition(".")
    setattr(body.get_submodule(parent) if parent else body, child, nn.Identity())
    return body, head


@contextlib.contextmanager
def _capture_input(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record the input of `module` during the block; the hook is removed on leaving, whatever happens."""
    store: dict[str, torch.Tensor] = {}

    def hook(_mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        store["x"] = args[0].detach()

    handle = module.register_forward_pre_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


class TorchBackend:
    """PyTorch eager inference on CPU (or the model's device), under `torch.inference_mode`.

    Args:
        model: a network in eval mode.
        threads: intra-op threads; None keeps torch's default (one per physical core). This is process-wide.
        channels_last: use the NHWC memory format, which oneDNN convolutions often run faster on CPU;
            `benchmarks/inference_speed.py --channels-last` measures whether it helps a given model.
    """

    name = "torch"

    def __init__(self, model: nn.Module, *, threads: int | None = None, channels_last: bool = False) -> None:
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        self.model = model.eval()
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.head_name, self.head = final_linear(self.model)
        self.device = next(self.model.parameters()).device
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode(), _capture_input(self.head) as store:
            logits = self.model(x)
        features = store["x"].flatten(1)
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

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            logits, features = self.session.run(["logits", "features"], {self.input_name: x})
        return np.asarray(logits, dtype=np.float32), np.asarray(features, dtype=np.float32).reshape(len(x), -1)
