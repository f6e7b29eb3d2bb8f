"""Temperature scaling (Guo et al., 2017) and the expected calibration error."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error


def fit_temperature(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on held-out (validation) data.

    Optimised over log T with L-BFGS so T stays positive; one scalar cannot change the argmax, so
    accuracy is untouched while confidence is calibrated.
    """
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    if len(z) == 0:
        raise ValueError("fit_temperature: no validation logits")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


ECE_BINS = 15  # equal-width confidence bins of every ECE the project reports (point figure and bootstrap)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE with equal-width bins (torchmetrics' definition), in [0, 1]."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(multiclass_calibration_error(p, y, num_classes=p.shape[1], n_bins=n_bins, norm="l1"))
