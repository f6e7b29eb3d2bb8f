"""The Predictor: batching, calibrated probabilities, per-file errors and refusals, both backends' plumbing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from braintumor.inference import Predictor, load_predictor, read_input
from braintumor.inference.backends import TorchBackend
from braintumor.io import read_scan
from braintumor.models import load_model
from braintumor.models.head import final_linear, softmax

from .conftest import encode


def _samples(samples_dir: Path) -> list[Path]:
    return sorted(samples_dir.glob("*/*.jpg"))


def test_predictions_are_calibrated_softmax_in_input_order(tiny_checkpoint: Path, samples_dir: Path) -> None:
    predictor = load_predictor(tiny_checkpoint)
    paths = _samples(samples_dir)
    preds = predictor.predict_inputs([read_input(p) for p in paths])
    assert [p.file for p in preds] == [str(p) for p in paths]
    for p in preds:
        assert p.error is None and p.in_distribution and p.ood_score is None  # no detector stored
        assert list(p.probabilities) == ["glioma", "meningioma", "notumor", "pituitary"]
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
        assert p.label == max(p.probabilities, key=p.probabilities.get)
        assert p.confidence == p.probabilities[p.label]


def test_batch_size_does_not_change_results(tiny_checkpoint: Path, samples_dir: Path) -> None:
    inputs = [read_input(p) for p in _samples(samples_dir)]
    whole = load_predictor(tiny_checkpoint, batch_size=32).predict_inputs(inputs)
    pieces = load_predictor(tiny_checkpoint, batch_size=3).predict_inputs(inputs)
    for a, b in zip(whole, pieces, strict=True):
        assert a.label == b.label
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_temperature_divides_the_logits(tiny_checkpoint: Path, samples_dir: Path) -> None:
    base = load_predictor(tiny_checkpoint)
    hot = Predictor(base.backend, base.pipeline, base.class_names, temperature=4.0)
    inputs = [read_input(p) for p in _samples(samples_dir)[:2]]
    p1 = np.array([list(p.probabilities.values()) for p in base.predict_inputs(inputs)])
    p4 = np.array([list(p.probabilities.values()) for p in hot.predict_inputs(inputs)])
    # log p differs from the logits by a per-row constant, so log-ratios shrink exactly by T.
    np.testing.assert_allclose(np.log(p4[:, 1:] / p4[:, :1]), np.log(p1[:, 1:] / p1[:, :1]) / 4.0, rtol=1e-6)
    assert p4.max() < p1.max()  # a higher temperature is less confident


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]), temperature=1.0)
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]], atol=1e-12)


def test_bad_and_refused_inputs_keep_their_place(tiny_checkpoint: Path, samples_dir: Path, photo_jpeg: bytes) -> None:
    good = _samples(samples_dir)[0]
    inputs = [
        read_input(b"", name="empty.jpg"),
        read_input(good),
        read_input(photo_jpeg, name="cat.jpg"),
        read_input(encode(np.full((128, 128), 40, np.uint8)), name="blank.png"),
        read_input(Path("/no/such/scan.dcm")),
    ]
    preds = load_predictor(tiny_checkpoint).predict_inputs(inputs)
    assert [p.file for p in preds] == ["empty.jpg", str(good), "cat.jpg", "blank.png", "/no/such/scan.dcm"]
    assert "empty" in preds[0].error and "not found" in preds[4].error
    assert preds[1].label is not None
    for p in (preds[2], preds[3]):
        assert p.error is None and p.in_distribution is False and p.label is None and p.probabilities == {}
    assert "colour photograph" in preds[2].note and "blank" in preds[3].note
    assert all(p.label is None and p.confidence is None for p in (preds[0], preds[4]))


def test_predict_scans_accepts_scan_objects(tiny_checkpoint: Path, samples_dir: Path) -> None:
    scans = [read_scan(p) for p in _samples(samples_dir)[:3]]
    preds = load_predictor(tiny_checkpoint).predict_scans(scans)
    assert [p.file for p in preds] == [s.source for s in scans] and all(p.label for p in preds)


def test_features_are_the_input_of_the_final_linear_layer(tiny_checkpoint: Path, samples_dir: Path) -> None:
    loaded = load_model(tiny_checkpoint)
    backend = TorchBackend(loaded.model)
    batch = np.random.default_rng(0).normal(size=(3, 1, 64, 64)).astype(np.float32)
    logits, features = backend.run(batch)
    _, head = final_linear(loaded.model)
    with torch.no_grad():
        again = head(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(again, logits, rtol=1e-5, atol=1e-5)
    assert features.shape == (3, head.in_features)
    assert not head._forward_pre_hooks  # the capture hook is removed after every call


def test_channels_last_gives_the_same_logits(tiny_checkpoint: Path) -> None:
    batch = np.random.default_rng(1).normal(size=(2, 1, 64, 64)).astype(np.float32)
    plain, _ = TorchBackend(load_model(tiny_checkpoint).model).run(batch)
    nhwc, _ = TorchBackend(load_model(tiny_checkpoint).model, channels_last=True).run(batch)
    np.testing.assert_allclose(plain, nhwc, rtol=1e-4, atol=1e-5)


def test_explain_png_is_at_scan_size(tiny_checkpoint: Path, samples_dir: Path) -> None:
    import io

    from PIL import Image

    scan = read_scan(_samples(samples_dir)[0])
    png, explanation = load_predictor(tiny_checkpoint).explain_png(scan)
    assert Image.open(io.BytesIO(png)).size == (scan.shape[1], scan.shape[0])
    assert explanation.cam.shape == scan.shape


def test_unknown_backend_and_model_are_clear_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_predictor(tiny_checkpoint, backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="model not found"):
        load_predictor(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="braintumor export"):
        load_predictor(tiny_checkpoint, backend="onnx")  # not exported yet


def test_prediction_dict_has_the_guide_keys() -> None:
    from braintumor.inference import Prediction

    keys = set(Prediction("a.jpg").to_dict())
    assert {"file", "label", "probabilities", "confidence", "in_distribution", "error"} <= keys
    assert dataclasses.asdict(Prediction("a.jpg"))["probabilities"] == {}


def _with_meta(checkpoint: Path, folder: Path, **changes: object) -> Path:
    """A copy of `checkpoint` whose sidecar has `changes` applied."""
    import shutil

    from braintumor.models import update_metadata

    shutil.copytree(checkpoint, folder)
    update_metadata(folder, **changes)
    return folder


def test_caveats_ride_with_the_answers_they_concern(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    plain = load_predictor(tiny_checkpoint).predict_inputs([read_input(p) for p in _samples(samples_dir)])
    assert all(p.caveat is None for p in plain)
    target = plain[0].label
    warned = _with_meta(tiny_checkpoint, tmp_path / "warned", caveats={target: "weak on T2 scans"})
    predictor = load_predictor(warned)
    assert predictor.card["caveats"] == {target: "weak on T2 scans"}
    preds = predictor.predict_inputs([read_input(p) for p in _samples(samples_dir)])
    assert [p.label for p in preds] == [p.label for p in plain]
    assert all((p.caveat == "weak on T2 scans") == (p.label == target) for p in preds)
    bad = _with_meta(tiny_checkpoint, tmp_path / "bad", caveats={"astrocytoma": "x"})
    with pytest.raises(ValueError, match=r"bad: 'caveats' must map class names \(glioma, meningioma"):
        load_predictor(bad)
