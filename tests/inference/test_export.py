"""ONNX export: the contract in the metadata, a dynamic batch axis, and parity with PyTorch on real scans."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from braintumor import DISCLAIMER
from braintumor.data import discover
from braintumor.inference import export_onnx, load_predictor, read_contract, read_input
from braintumor.inference.backends import OnnxBackend, TorchBackend
from braintumor.inference.export import parity
from braintumor.io import read_scan
from braintumor.models import load_model
from braintumor.training.ood_fit import fit_ood


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(load_model(tiny_checkpoint), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_metadata_holds_the_preprocessing_contract(exported: Path, tiny_checkpoint: Path) -> None:
    loaded = load_model(tiny_checkpoint)
    c = read_contract(exported)
    assert c["class_names"] == loaded.class_names and c["image_size"] == 64 and c["in_chans"] == 1
    assert c["normalization"] == {"mean": [0.5], "std": [0.5], "per_scan_norm": False}
    assert c["preprocess"]["crop"] is True and "image_size" not in c["preprocess"]  # one home: c["image_size"]
    assert c["temperature"] == 1.0 and c["weights_sha256"] == loaded.meta["weights_sha256"]
    assert c["disclaimer"] == DISCLAIMER and c["arch"] == "simple_cnn"


def test_batch_axis_is_dynamic(exported: Path) -> None:
    backend = OnnxBackend(exported)
    for n in (1, 5):
        logits, features = backend.run(np.zeros((n, 1, 64, 64), np.float32))
        assert logits.shape == (n, 4) and features.shape == (n, 256)


def test_onnx_matches_torch_on_real_scans(exported: Path, tiny_checkpoint: Path, samples_dir: Path) -> None:
    loaded = load_model(tiny_checkpoint)
    scans = [read_scan(p) for p in sorted(samples_dir.glob("*/*.jpg"))]
    assert parity(loaded, exported, scans) < 1e-4
    # Features agree too, so the OOD check gives the same answer on either backend.
    from braintumor.data.pipeline import ScanPipeline

    batch = np.stack([ScanPipeline.for_model(loaded)(s).numpy() for s in scans])
    _, f_torch = TorchBackend(loaded.model).run(batch)
    _, f_onnx = OnnxBackend(exported).run(batch)
    np.testing.assert_allclose(f_onnx, f_torch, rtol=1e-4, atol=1e-5)


def test_onnx_predictor_uses_the_contract_and_the_ood_check_beside_it(
    model_copy: Path, samples_dir: Path, noise_png: bytes
) -> None:
    loaded = load_model(model_copy)
    samples = discover(samples_dir).samples()
    detector = fit_ood(loaded, samples, samples, percentile=100)
    # Threshold = the largest sample score; lift it 1 % so float differences between runtimes cannot flip a sample.
    dataclasses.replace(detector, threshold=detector.threshold * 1.01).save(model_copy)
    export_onnx(loaded, model_copy / "model.onnx")
    paths = sorted(samples_dir.glob("*/*.jpg"))
    inputs = [read_input(p) for p in paths] + [read_input(noise_png, name="noise.png")]
    by_torch = load_predictor(model_copy).predict_inputs(inputs)
    by_onnx = load_predictor(model_copy, backend="onnx").predict_inputs(inputs)
    assert load_predictor(model_copy, backend="onnx").card["backend"] == "onnx"
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert a.label == b.label and a.in_distribution == b.in_distribution
        for cls, p in a.probabilities.items():
            assert abs(p - b.probabilities[cls]) < 1e-4
    assert by_onnx[-1].in_distribution is False


def test_stale_export_is_refused(model_copy: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from braintumor.models import create_model, save_checkpoint

    loaded = load_model(model_copy)
    export_onnx(loaded, model_copy / "model.onnx")
    other = create_model("simple_cnn", num_classes=4, in_chans=1)
    torch.nn.init.constant_(other.classifier[1].bias, 1.0)
    kwargs = {"preprocess": loaded.preprocess, "normalization": loaded.normalization, "image_size": 64}
    save_checkpoint(
        model_copy, other, arch="simple_cnn", num_classes=4, in_chans=1, class_names=loaded.class_names, **kwargs
    )
    with pytest.raises(ValueError, match="other weights"):
        load_predictor(model_copy, backend="onnx")


def test_not_an_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\x01")
    with pytest.raises(ValueError, match=r"model\.onnx: not a readable ONNX file"):
        read_contract(bad)


def test_onnx_graph_carries_the_stats_layer_of_its_ood_check(model_copy: Path, samples_dir: Path) -> None:
    loaded = load_model(model_copy)
    samples = discover(samples_dir).samples()
    detector = fit_ood(loaded, samples, samples, percentile=100, stats_layer="features.6")
    dataclasses.replace(detector, threshold=detector.threshold * 1.01).save(model_copy)
    onnx_path = export_onnx(loaded, model_copy / "model.onnx", stats_layer="features.6")
    assert read_contract(onnx_path)["ood_stats_layer"] == "features.6"
    inputs = [read_input(s.path) for s in samples]
    by_torch = load_predictor(model_copy).predict_inputs(inputs)
    by_onnx = load_predictor(model_copy, backend="onnx").predict_inputs(inputs)
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert a.in_distribution and b.in_distribution
        assert abs(a.ood_score - b.ood_score) < 1e-3 * a.ood_score
    export_onnx(loaded, model_copy / "model.onnx")  # a graph without the statistics the detector needs
    with pytest.raises(ValueError, match="re-run `braintumor export`"):
        load_predictor(model_copy, backend="onnx")


def test_cli_export_gives_the_graph_the_layer_of_the_fitted_check(
    model_copy: Path, samples_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from braintumor.cli import main

    for split in ("train", "val"):  # the 8 samples are too few to carve a validation split from
        shutil.copytree(samples_dir, tmp_path / "data" / split, ignore=shutil.ignore_patterns("*.md"))
    args = ["export", "--model", str(model_copy), "--ood-from", str(tmp_path / "data"), "--quiet"]
    assert main([*args, "--ood-layer", "features.6", "--ood-percentile", "100"]) == 0
    assert read_contract(model_copy / "model.onnx")["ood_stats_layer"] == "features.6"
    assert load_predictor(model_copy, backend="onnx").ood.stats_layer == "features.6"
    assert main([*args, "--ood-layer", "none"]) == 0
    assert read_contract(model_copy / "model.onnx")["ood_stats_layer"] is None


@pytest.mark.parametrize(
    ("key", "value"), [("image_size", 96), ("class_names", ["a", "b", "c"])], ids=["size", "classes"]
)
def test_a_contract_that_disagrees_with_its_graph_is_refused_on_load(
    tiny_checkpoint: Path, tmp_path: Path, key: str, value
) -> None:
    # a hand-edited contract used to load and then fail at the first prediction with ONNX Runtime's error
    import json

    import onnx

    path = export_onnx(load_model(tiny_checkpoint), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == f"braintumor.{key}":
            old = json.loads(prop.value)
            prop.value = json.dumps({**old, **value} if isinstance(value, dict) else value)
    onnx.save(proto, str(path))
    with pytest.raises(ValueError, match=r"but its contract says .* re-run `braintumor export`"):
        load_predictor(path, backend="onnx")
