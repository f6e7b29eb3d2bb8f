"""The classification head: where a network is split into features and its final linear layer.

Every model in the registry ends in exactly one `nn.Linear`; its input is the penultimate feature vector
that the out-of-distribution check reads, and `softmax(logits / T)` is the one definition of calibrated
probabilities, shared by training, evaluation, inference and serving.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.special import softmax as _softmax
from torch import nn


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities softmax(logits / temperature) per row, float64 (the one definition
    shared by evaluation, inference and serving)."""
    return _softmax(np.asarray(logits, dtype=np.float64) / float(temperature), axis=1)


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


def _layer(body: nn.Module, name: str) -> nn.Module:
    """`body`'s submodule `name`, also when `body` wraps the model (a test-time-augmentation wrapper's `body.`)."""
    for path in (name, f"body.{name}"):
        try:
            return body.get_submodule(path)
        except AttributeError:
            continue
    raise ValueError(f"{type(body).__name__} has no layer '{name}' to take image statistics from")


class LogitsAndFeatures(nn.Module):
    """The network split at its final linear layer: forward gives (logits, OOD features).

    The features are the penultimate activations, followed, with `stats_layer`, by the per-channel mean and
    standard deviation of that layer's output (2C values). A wrapper that runs k views of each scan as one
    batch of kN (the mirror averaging of `tta.py`) gets the statistics averaged over the k views, as the
    penultimate features are. Written as a forward hook so the ONNX exporter traces the same code.
    """

    def __init__(self, model: nn.Module, stats_layer: str | None = None) -> None:
        super().__init__()
        self.body, self.head = split_at_head(model)
        self.stats_layer = stats_layer
        self._seen: list[torch.Tensor] = []
        if stats_layer:
            # a bound method, not a lambda: a deep copy of this module then hooks into the copy's list
            _layer(self.body, stats_layer).register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
        self._seen.append(out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        self._seen.clear()
        features = torch.flatten(self.body(x), 1)
        logits = self.head(features)
        if self.stats_layer:
            out = self._seen.pop()
            stats = torch.cat([out.mean((2, 3)), out.std((2, 3))], 1)
            features = torch.cat([features, stats.reshape(-1, n, stats.shape[1]).mean(0)], 1)
        return logits, features
