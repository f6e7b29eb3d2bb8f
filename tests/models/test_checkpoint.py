"""Self-describing checkpoints: what the sidecar holds, which paths load, and the errors users meet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from braintumor.models import CheckpointError, create_model, load_model, read_metadata, save_checkpoint

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def _save(path: Path, **overrides) -> Path:
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=4, in_chans=1, width=4)
    args = {
        "arch": "simple_cnn",
        "num_classes": 4,
        "in_chans": 1,
        "class_names": CLASSES,
        "image_size": 32,
        "preprocess": {"crop": True},
        "normalization": {"mean": [0.5], "std": [0.25]},
        "temperature": 1.7,
        "config": {"epochs": 3, "lr": 1e-3},
        "data_fingerprint": "sha256:abc",
        "metrics": {"accuracy": 0.9, "auc": float("nan")},
        "extra": {"note": "test"},
    }
    return save_checkpoint(path, model, **{**args, **overrides})


def test_sidecar_describes_the_model(tmp_path: Path) -> None:
    weights = _save(tmp_path / "run" / "best")
    assert weights == tmp_path / "run" / "best.safetensors"
    meta = json.loads((tmp_path / "run" / "best.json").read_text(encoding="utf-8"))
    assert meta["format"] == "braintumor-checkpoint" and meta["format_version"] == 1
    assert meta["arch"] == "simple_cnn" and meta["model_options"] == {"width": 4}
    assert meta["class_names"] == CLASSES and meta["temperature"] == 1.7
    assert meta["config"]["epochs"] == 3 and meta["data_fingerprint"] == "sha256:abc"
    assert meta["metrics"] == {"accuracy": 0.9, "auc": None}  # NaN is not JSON: stored as null
    assert len(meta["weights_sha256"]) == 64 and "torch" in meta["versions"]


def test_loaded_model_carries_everything_needed_to_use_it(tmp_path: Path) -> None:
    _save(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.class_names == CLASSES and loaded.num_classes == 4
    assert (loaded.image_size, loaded.in_chans, loaded.temperature) == (32, 1, 1.7)
    assert loaded.normalization == {"mean": [0.5], "std": [0.25]}
    assert loaded.preprocess == {"crop": True, "margin": 0.04, "threshold_frac": 0.5}  # defaults filled in
    assert loaded.meta["extra"] == {"note": "test"}
    assert not loaded.model.training


@pytest.mark.parametrize("form", ["dir", "safetensors", "json", "stem"])
def test_any_path_form_loads(tmp_path: Path, form: str) -> None:
    _save(tmp_path)
    path = {
        "dir": tmp_path,
        "safetensors": tmp_path / "model.safetensors",
        "json": tmp_path / "model.json",
        "stem": tmp_path / "model",
    }[form]
    assert load_model(path).arch == "simple_cnn"


def test_batchnorm_buffers_are_saved(tmp_path: Path) -> None:
    model = create_model("simple_cnn", num_classes=2, width=4)
    model.features[1].running_mean.fill_(0.25)
    save_checkpoint(
        tmp_path,
        model,
        arch="simple_cnn",
        num_classes=2,
        in_chans=3,
        class_names=["no", "yes"],
        image_size=32,
        preprocess={},
        normalization={"mean": [0.5] * 3, "std": [0.5] * 3},
    )
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.model.features[1].running_mean, torch.full((4,), 0.25))


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("load_model must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("pickle.load", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    assert load_model(tmp_path).arch == "simple_cnn"


def test_missing_sidecar_is_named(tmp_path: Path) -> None:
    _save(tmp_path)
    (tmp_path / "model.json").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: its sidecar model\.json is missing"):
        load_model(tmp_path / "model.safetensors")


def test_missing_weights_are_named(tmp_path: Path) -> None:
    _save(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights file is missing"):
        load_model(tmp_path / "model.json")


def test_empty_folder_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no checkpoint found \(expected model\.safetensors and model\.json\)"):
        load_model(tmp_path)


def _edit_sidecar(tmp_path: Path, **changes) -> None:
    path = tmp_path / "model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta), encoding="utf-8")


def test_unknown_arch_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    _edit_sidecar(tmp_path, arch="convnext_xxl")
    with pytest.raises(CheckpointError, match=r"model\.json: unknown model architecture 'convnext_xxl'.*simple_cnn"):
        load_model(tmp_path)


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    _save(tmp_path)
    _edit_sidecar(tmp_path, num_classes=3, class_names=CLASSES[:3])
    with pytest.raises(CheckpointError, match=r"classifier\.1\.weight has shape \(4, 32\), model expects \(3, 32\)"):
        load_model(tmp_path)


def test_truncated_weights_are_reported_as_corrupt(tmp_path: Path) -> None:
    weights = _save(tmp_path)
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="does not match its sidecar"):
        load_model(tmp_path)
    _edit_sidecar(tmp_path, weights_sha256=None)  # without the hash, the safetensors reader still refuses it
    with pytest.raises(CheckpointError, match="corrupt safetensors file"):
        load_model(tmp_path)


def test_sidecar_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    (tmp_path / "model.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        read_metadata(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a braintumor checkpoint"):
        read_metadata(tmp_path)


def test_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    _save(tmp_path)
    _edit_sidecar(tmp_path, format_version=99)
    with pytest.raises(CheckpointError, match="newer than this braintumor reads"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"class_names": ["a", "b"]}, "4 distinct names"),
        ({"num_classes": 5, "class_names": [*CLASSES, "x"]}, "contradict the model"),
        ({"normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}}, "1 value"),
        ({"temperature": 0.0}, "temperature"),
        ({"arch": "nope"}, "unknown model"),
        ({"extra": {"obj": object()}}, "cannot hold"),
    ],
)
def test_save_refuses_inconsistent_arguments(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _save(tmp_path, **overrides)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": 0}, "temperature must be a positive number, not 0"),
        ({"temperature": -1.0}, "temperature must be a positive number"),
        ({"temperature": "1.5"}, "temperature must be a positive number"),
    ],
)
def test_a_temperature_that_would_break_the_answers_is_refused(tmp_path: Path, changes: dict, message: str) -> None:
    # T = 0 gives NaN confidences and T < 0 inverts the ranking: a hand-edited sidecar must not load
    _save(tmp_path)
    _edit_sidecar(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)


def test_a_class_named_twice_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    names = read_metadata(tmp_path)["class_names"]
    _edit_sidecar(tmp_path, class_names=[names[0], *names[:-1]])  # one probability would vanish from the result
    with pytest.raises(CheckpointError, match="names a class twice"):
        load_model(tmp_path)


def test_an_image_size_stored_twice_must_agree(tmp_path: Path) -> None:
    _save(tmp_path / "model")
    meta_path = tmp_path / "model.json"
    meta = json.loads(meta_path.read_text())
    assert "image_size" not in meta["preprocess"]  # its one home is the sidecar's own image_size
    meta["preprocess"]["image_size"] = 32  # as sidecars before the size had one home: accepted when equal
    meta_path.write_text(json.dumps(meta))
    assert load_model(tmp_path).image_size == 32
    meta["preprocess"]["image_size"] = 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="say 64 px but the model's image_size is 32"):
        load_model(tmp_path)
