"""CAM behaviour of every method: maps find what the model learned, hooks never outlive a call, targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.base_cam import BaseCAM

from braintumor.data.pipeline import ScanPipeline
from braintumor.explain import METHODS, Explainer, explain_scan
from braintumor.io import read_scan
from braintumor.models import create_model, list_models, load_model

TINY_OPTIONS = {"vgg_bn": {"width": 8}, "simple_cnn": {"width": 8}}


@pytest.mark.parametrize("method", list(METHODS))
def test_cam_peak_falls_inside_the_square_the_model_learned(square_model, make_square_scan, method: str) -> None:
    explainer = Explainer(load_model(square_model), method=method)
    rng = np.random.default_rng(123)
    hits = 0
    n = 30
    for _ in range(n):
        img, (x0, y0, x1, y1) = make_square_scan(rng, True)
        exp = explainer.explain(img, target="square")
        assert exp.cam.shape == img.shape  # non-square scan, mapped back to its own size
        x, y = exp.peak
        hits += x0 <= x < x1 and y0 <= y < y1
    assert hits / n >= 0.8, f"CAM peak inside the square for only {hits}/{n} scans"


def test_layercam_is_the_default_everywhere(tiny_checkpoint, samples_dir) -> None:
    # LayerCAM localised tumours best on the shipped model (docs/model-notebook.md, "Where it looks"): every entry point
    # that does not name a method must use it.
    loaded = load_model(tiny_checkpoint)
    assert Explainer(loaded).method == "layercam"
    scan = read_scan(next((samples_dir / "glioma").iterdir()))
    assert explain_scan(loaded, scan).method == "layercam"


def test_square_model_predicts_the_square(square_model, make_square_scan) -> None:
    # Guards the test above: a model that learned nothing would make its CAM meaningless.
    explainer = Explainer(load_model(square_model))
    rng = np.random.default_rng(7)
    labels = [explainer.explain(make_square_scan(rng, bool(i % 2))[0]).predicted_label for i in range(20)]
    assert labels == ["empty", "square"] * 10


@pytest.mark.parametrize("method", list(METHODS))
def test_hooks_are_removed_after_each_call(tiny_checkpoint, samples_dir, hook_check, method: str) -> None:
    loaded = load_model(tiny_checkpoint)
    explainer = Explainer(loaded, method=method)
    scan = read_scan(next((samples_dir / "glioma").iterdir()))
    for _ in range(3):
        explainer.explain(scan)
    assert not hook_check(explainer.model)
    assert not hook_check(loaded.model)
    assert all(p.grad is None for p in explainer.model.parameters())  # gradients freed, nothing accumulates


def test_hooks_are_removed_when_the_cam_fails(tiny_checkpoint, samples_dir, hook_check, monkeypatch) -> None:
    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(BaseCAM, "forward", boom)  # every method's forward
    explainer = Explainer(load_model(tiny_checkpoint))
    with pytest.raises(RuntimeError, match="boom"):
        explainer.explain(read_scan(next((samples_dir / "notumor").iterdir())))
    assert not hook_check(explainer.model)


def test_target_by_name_or_index_gives_the_same_map_and_differs_from_another_class(tiny_checkpoint, samples_dir):
    explainer = Explainer(load_model(tiny_checkpoint))
    scan = read_scan(next((samples_dir / "meningioma").iterdir()))
    by_name = explainer.explain(scan, target="pituitary")
    by_index = explainer.explain(scan, target=3)
    assert by_name.target_label == by_index.target_label == "pituitary"
    np.testing.assert_array_equal(by_name.cam, by_index.cam)
    other = explainer.explain(scan, target="glioma")
    assert not np.array_equal(other.cam, by_name.cam)


@pytest.mark.parametrize("target", ["astrocytoma", 4, -1, True])
def test_unknown_target_is_a_value_error_listing_the_classes(tiny_checkpoint, samples_dir, target) -> None:
    explainer = Explainer(load_model(tiny_checkpoint))
    with pytest.raises(ValueError, match="glioma, meningioma, notumor, pituitary"):
        explainer.explain(read_scan(next((samples_dir / "glioma").iterdir())), target=target)


def test_unknown_method_is_a_value_error(tiny_checkpoint) -> None:
    with pytest.raises(ValueError, match="gradcam"):
        Explainer(load_model(tiny_checkpoint), method="scorecam")


def test_probabilities_are_the_calibrated_softmax_of_the_pipeline_input(tiny_checkpoint, samples_dir) -> None:
    loaded = load_model(tiny_checkpoint)
    loaded.temperature = 2.5
    scan = read_scan(next((samples_dir / "pituitary").iterdir()))
    with torch.no_grad():
        logits = loaded.model(ScanPipeline.for_model(loaded)(scan).unsqueeze(0))[0]
    expected = torch.softmax(logits.double() / 2.5, dim=0).numpy()
    exp = explain_scan(loaded, scan)
    got = np.array([exp.probabilities[c] for c in loaded.class_names])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert exp.predicted == int(np.argmax(expected)) == exp.target
    assert exp.confidence == pytest.approx(float(expected.max()))


def test_works_under_no_grad_and_with_frozen_weights(tiny_checkpoint, samples_dir) -> None:
    loaded = load_model(tiny_checkpoint)
    for p in loaded.model.parameters():
        p.requires_grad_(False)  # as an inference-only caller might leave them
    scan = read_scan(next((samples_dir / "glioma").iterdir()))
    with torch.no_grad():
        exp = Explainer(loaded).explain(scan)
    assert exp.cam.shape == scan.shape
    assert exp.cam.dtype == np.float32
    assert exp.cam.max() == pytest.approx(1.0)
    assert exp.cam.min() >= 0.0


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_can_be_explained(name: str, make_checkpoint, make_head_scan, hook_check) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, in_chans=3, **TINY_OPTIONS.get(name, {})).eval()
    explainer = Explainer(load_model(make_checkpoint(model, ["no", "yes"], image_size=64)))
    scan = make_head_scan()
    exp = explainer.explain(scan)
    assert exp.cam.shape == scan.shape
    assert np.isfinite(exp.cam).all() and 0.0 <= exp.cam.min() <= exp.cam.max() <= 1.0
    assert not hook_check(explainer.model)
