"""Transforms: shapes and ranges, deterministic evaluation, each augmentation active at p=1, YAML config."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.cli import main
from braintumor.data import AugmentConfig, Preprocess, build_transforms, load_preprocessed, save_augment_grid
from braintumor.data.mri_transforms import PercentileNormalize, RandomCLAHE, RandomIntensityRemap

PROBABILITIES = [f.name for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_p")]


@pytest.fixture(scope="module")
def image(samples_dir) -> np.ndarray:
    return load_preprocessed(samples_dir / "meningioma" / "Te-me_0115.jpg", Preprocess(image_size=64))


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("train", [False, True])
def test_output_shape_dtype_and_range(image, in_chans, train):
    torch.manual_seed(0)
    out = build_transforms(AugmentConfig(), train=train, in_chans=in_chans, mean=[0.0], std=[1.0])(image)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (in_chans, 64, 64)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.05
    if in_chans == 3:
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_eval_is_deterministic_and_normalised(image):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    tf = build_transforms(AugmentConfig(), train=False, in_chans=3, mean=mean, std=std)
    a, b = tf(image), tf(image)
    assert torch.equal(a, b)
    expected = (torch.from_numpy(image).float() / 255 - mean[1]) / std[1]
    torch.testing.assert_close(a[1], expected)


def test_train_pipeline_with_everything_off_equals_eval(image):
    train = build_transforms(AugmentConfig.off(), train=True, in_chans=1, mean=[0.5], std=[0.25])
    evaluation = build_transforms(AugmentConfig(), train=False, in_chans=1, mean=[0.5], std=[0.25])
    assert torch.equal(train(image), evaluation(image))


@pytest.mark.parametrize("prob", PROBABILITIES)
def test_each_augmentation_changes_the_image_at_p1(image, prob):
    cfg = dataclasses.replace(AugmentConfig.off(), **{prob: 1.0})
    tf = build_transforms(cfg, train=True, in_chans=1, mean=[0.0], std=[1.0])
    plain = build_transforms(None, train=False, in_chans=1, mean=[0.0], std=[1.0])(image)
    torch.manual_seed(1)
    outs = [tf(image) for _ in range(3)]
    assert all((o - plain).abs().mean() > 1e-3 for o in outs), prob
    assert all(o.shape == plain.shape and o.min() >= 0 and o.max() <= 1 for o in outs)


def test_clahe_raises_local_contrast_and_percentile_norm_stretches():
    low = 0.4 + 0.1 * torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    out = RandomCLAHE(p=1.0, clip_limit=4.0)(low)
    assert out.shape == low.shape and out.std() > 2 * low.std()
    assert torch.equal(RandomCLAHE(p=0.0)(low), low)
    stretched = PercentileNormalize(1, 99)(low)
    assert stretched.min() == 0 and stretched.max() == 1
    const = torch.full((1, 8, 8), 0.3)
    assert torch.equal(PercentileNormalize()(const), const)


def test_intensity_remap_follows_its_curve_keeps_black_and_can_invert():
    ramp = torch.linspace(0, 1, 97).reshape(1, 1, 97)
    remap = RandomIntensityRemap(p=1.0, points=3)
    knots = torch.tensor([0.0, 0.9, 0.2, 0.6, 0.1])  # 0 -> 0, then values at 1/4, 1/2, 3/4 and 1
    out = remap.transform(ramp, {"values": knots})
    expected = torch.from_numpy(np.interp(ramp.numpy(), np.linspace(0, 1, 5), knots.numpy())).float()
    torch.testing.assert_close(out, expected)
    assert out[0, 0, 0] == 0 and out.min() >= 0 and out.max() <= 1
    assert out[0, 0, -1] < out[0, 0, 24]  # bright became dark: a sequence-like contrast change
    assert torch.equal(RandomIntensityRemap(p=0.0)(ramp), ramp)
    torch.manual_seed(0)
    curves = [remap(ramp) for _ in range(20)]
    assert all(c[0, 0, 0] == 0 for c in curves) and len({round(float(c.mean()), 4) for c in curves}) == 20
    with pytest.raises(ValueError, match="points must be at least 1"):
        RandomIntensityRemap(points=0)


def test_per_scan_normalisation_option(image):
    dim = (image // 4).astype(np.uint8)
    out = build_transforms(None, train=False, in_chans=1, mean=[0.0], std=[1.0], per_scan_norm=True)(dim)
    assert out.max() == 1 and out.min() == 0
    plain = build_transforms(None, train=False, in_chans=1, mean=[0.0], std=[1.0])(dim)
    assert plain.max() < 0.3


def test_pipelines_pickle_for_dataloader_workers(image):
    tf = build_transforms(AugmentConfig(clahe_p=1.0), train=True, in_chans=3, mean=[0.5], std=[0.5])
    clone = pickle.loads(pickle.dumps(tf))
    torch.manual_seed(4)
    a = tf(image)
    torch.manual_seed(4)
    assert torch.equal(clone(image), a)


@pytest.mark.parametrize(("mean", "std", "message"), [([0.1, 0.2], [1.0], "mean has 2 values"), ([0.0], [0.0], "std")])
def test_bad_normalisation_is_rejected(mean, std, message):
    with pytest.raises(ValueError, match=message):
        build_transforms(None, train=False, in_chans=3, mean=mean, std=std)
    with pytest.raises(ValueError, match="in_chans must be 1 or 3"):
        build_transforms(None, train=False, in_chans=2, mean=[0.0], std=[1.0])


def test_config_from_yaml_round_trip(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text("hflip_p: 0.0\nrotation_deg: 15\nscale: [0.8, 1.2]\nclahe_grid: 4\n", encoding="utf-8")
    cfg = AugmentConfig.from_yaml(path)
    assert cfg == dataclasses.replace(AugmentConfig(), hflip_p=0.0, rotation_deg=15.0, scale=(0.8, 1.2), clahe_grid=4)
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert AugmentConfig.from_yaml(tmp_path / "empty.yaml") == AugmentConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hflip_prob: 0.5\n", r"unknown setting\(s\) 'hflip_prob' \(did you mean 'hflip_p'\?\)"),
        ("rotation_deg: ten\n", "'rotation_deg' must be a number"),
        ("clahe_grid: 4.5\n", "'clahe_grid' must be an integer"),
        ("scale: 0.9\n", r"'scale' must be a \[low, high\] pair"),
        ("noise_p: 1.5\n", "'noise_p' is a probability"),
        ("gamma: [1.3, 0.7]\n", "'gamma' must be a range"),
        ("remap_points: 0\n", "'remap_points' must be at least 1"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("a: [1\n", "not valid YAML"),
    ],
)
def test_config_errors_are_clear(tmp_path, text, message):
    path = tmp_path / "aug.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        AugmentConfig.from_yaml(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="augmentation config file not found"):
        AugmentConfig.from_yaml(tmp_path / "nope.yaml")


def test_augment_grid_is_seeded(samples_dir, tmp_path):
    scan = samples_dir / "glioma" / "Te-gl_0026.jpg"
    kw = {"cfg": AugmentConfig(), "n": 3, "image_size": 48}
    state = torch.random.get_rng_state()
    a = np.asarray(Image.open(save_augment_grid(scan, tmp_path / "a.png", seed=1, **kw)))
    b = np.asarray(Image.open(save_augment_grid(scan, tmp_path / "b.png", seed=1, **kw)))
    c = np.asarray(Image.open(save_augment_grid(scan, tmp_path / "c.png", seed=2, **kw)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched


def test_cli_show_augment_writes_a_png(samples_dir, tmp_path, capsys):
    config = tmp_path / "aug.yaml"
    config.write_text("vflip_p: 1.0\n", encoding="utf-8")
    out = tmp_path / "out dir" / "grid é.png"
    scan = samples_dir / "pituitary" / "Te-pi_0013.jpg"
    args = ["data", "show-augment", str(scan), "--out", str(out), "--n", "5", "--image-size", "64"]
    assert main([*args, "--config", str(config)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(out).size[0] > 3 * 64
    assert "wrote" in capsys.readouterr().out
    config.write_text("vflip: 1.0\n", encoding="utf-8")
    assert main([*args, "--config", str(config)]) == 2
    assert "unknown setting(s) 'vflip'" in capsys.readouterr().err
