"""Test-time augmentation (mirror average): exact maths, every backend, the OOD link, the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from braintumor.inference import export_onnx, load_predictor, read_contract
from braintumor.inference.backends import TorchBackend
from braintumor.io import read_scan
from braintumor.models import create_model, load_model, read_metadata, update_metadata
from braintumor.models.head import split_at_head
from braintumor.models.ood import OODDetector
from braintumor.models.tta import FlipAverage, inference_model, tta_mode, with_tta


def test_flip_average_is_the_mean_of_both_views_logits_and_features() -> None:
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=3, in_chans=1, pretrained=False).eval()
    x = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1))) / 2
        tta = FlipAverage(model).eval()
        assert torch.allclose(tta(x), expected, atol=1e-5)
        body, _ = split_at_head(model)
        feats = (body(x).flatten(1) + body(x.flip(-1)).flatten(1)) / 2
    logits, features = TorchBackend(tta).run(x.numpy())
    assert np.allclose(logits, expected.numpy(), atol=1e-5)
    assert features.shape == (4, feats.shape[1]) and np.allclose(features, feats.numpy(), atol=1e-5)
    # The wrapped model is a copy: the original still gives single-view logits.
    assert isinstance(list(model.modules())[-1], torch.nn.Linear)
    assert with_tta(model, "none") is model


def test_unknown_modes_are_refused_with_the_source_named() -> None:
    assert tta_mode({}) == "none"
    with pytest.raises(ValueError, match=r"model.json: unknown test-time augmentation 'vflip'"):
        tta_mode({"tta": "vflip"}, "model.json")
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        with_tta(torch.nn.Linear(2, 2), "rot90")


def test_sidecar_mode_reaches_torch_and_onnx_alike(model_copy: Path, samples_dir: Path) -> None:
    scans = sorted(samples_dir.glob("*/*.jpg"))[:6]
    plain = load_predictor(model_copy).predict_scans([read_scan(p) for p in scans])
    update_metadata(model_copy, tta="hflip")
    assert read_metadata(model_copy)["tta"] == "hflip"
    torch_pred = load_predictor(model_copy)
    assert torch_pred.card["tta"] == "hflip"
    tta = torch_pred.predict_scans([read_scan(p) for p in scans])
    onnx_path = export_onnx(load_model(model_copy), model_copy / "model.onnx")
    assert read_contract(onnx_path)["tta"] == "hflip"
    onnx = load_predictor(model_copy, backend="onnx").predict_scans([read_scan(p) for p in scans])
    for a, b in zip(tta, onnx, strict=True):
        assert a.label == b.label
        assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in a.probabilities) < 1e-4
    # Mirror averaging changes the numbers (the sample scans are not symmetric).
    assert any(abs(a.confidence - p.confidence) > 1e-6 for a, p in zip(tta, plain, strict=True))


def test_ood_detector_fitted_for_another_mode_is_refused_clearly(model_copy: Path) -> None:
    loaded = load_model(model_copy)
    with torch.no_grad():
        dim = TorchBackend(inference_model(loaded)).run(np.zeros((1, 1, 64, 64), np.float32))[1].shape[1]
    info = {"weights_sha256": loaded.meta["weights_sha256"], "tta": "none"}
    OODDetector(np.zeros((4, dim)), np.eye(dim), 10.0, info).save(model_copy / "model")
    assert load_predictor(model_copy).ood_available
    update_metadata(model_copy, tta="hflip")
    with pytest.raises(ValueError, match=r"model\.ood\.json: .*test-time augmentation 'none' but the model now uses"):
        load_predictor(model_copy)


def test_update_metadata_keeps_weights_and_refuses_identity_fields(model_copy: Path) -> None:
    before = read_metadata(model_copy)
    weights = (model_copy / "model.safetensors").read_bytes()
    meta = update_metadata(model_copy, temperature=1.7)
    assert meta["temperature"] == 1.7 and load_model(model_copy).temperature == 1.7
    assert (model_copy / "model.safetensors").read_bytes() == weights
    assert meta["weights_sha256"] == before["weights_sha256"]
    with pytest.raises(ValueError, match="describe the weights"):
        update_metadata(model_copy, class_names=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="temperature"):
        update_metadata(model_copy, temperature=-1.0)
    assert json.loads((model_copy / "model.json").read_text())["temperature"] == 1.7
