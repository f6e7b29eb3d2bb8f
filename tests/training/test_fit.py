"""End-to-end training runs on tiny data: run folder, checkpoint, resume, DDP, real datasets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from braintumor.cli import main
from braintumor.models.checkpoint import load_model
from braintumor.training.config import TrainConfig
from braintumor.training.fit import MONITOR

from .conftest import TINY


def _train_args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--cache-dir", str(cache), *TINY, *extra]


def test_train_writes_a_complete_run_folder(square_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(_train_args(square_data, out, tmp_path / "cache", "--epochs", "3", "--lr", "3e-3")) == 0
    for name in ("config.yaml", "model.safetensors", "model.json", "val_metrics.json", "data.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard events"
    cfg = TrainConfig.from_sources(out / "config.yaml")
    assert cfg.arch == "simple_cnn" and cfg.image_size == 64 and cfg.pretrained is False
    metrics = json.loads((out / "val_metrics.json").read_text())
    assert metrics["n"] == json.loads((out / "data.json").read_text())["val"] > 0
    assert 0.0 < metrics["temperature"] < 20.0
    loaded = load_model(out)
    assert loaded.class_names == ["plain", "square"]
    assert loaded.temperature == pytest.approx(metrics["temperature"])
    with torch.no_grad():
        assert loaded.model(torch.zeros(2, 3, 64, 64)).shape == (2, 2)


def test_train_refuses_to_overwrite_a_run_without_resume(square_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(_train_args(square_data, out, tmp_path / "cache", "--epochs", "1")) == 0
    assert main(_train_args(square_data, out, tmp_path / "cache", "--epochs", "1")) == 2


def test_exclude_list_drops_images(square_data: Path, tmp_path: Path) -> None:
    drop = sorted((square_data / "Training" / "plain").iterdir())[:5]
    listing = tmp_path / "exclude.txt"
    listing.write_text("".join(p.relative_to(square_data).as_posix() + "\n" for p in drop))
    out = tmp_path / "run"
    assert main(_train_args(square_data, out, tmp_path / "cache", "--epochs", "1", "--exclude", str(listing))) == 0
    data = json.loads((out / "data.json").read_text())
    assert data["excluded"] == 5 and data["train"] + data["val"] == 48 - 5


def test_init_from_continues_a_trained_model_at_another_size(square_data: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert main(_train_args(square_data, first, tmp_path / "cache", "--epochs", "1")) == 0
    start = {k: v.clone() for k, v in load_model(first).model.state_dict().items()}
    # zero epochs of training is not allowed, so check the copy before any step: lr 0 leaves the weights as loaded
    second = tmp_path / "second"
    args = _train_args(square_data, second, tmp_path / "cache", "--epochs", "1", "--lr", "0", "--init-from", str(first))
    args[args.index("--image-size") + 1] = "96"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    assert not [w for w in caught if "validation split may hold" in str(w.message)]  # same data, seed and lists
    after = load_model(second)
    assert after.image_size == 96
    for name, value in after.model.state_dict().items():
        if "running" not in name and "num_batches" not in name:  # BatchNorm statistics move even at lr 0
            assert torch.equal(value, start[name]), name


def test_init_from_does_not_fetch_imagenet_weights(square_data: Path, tmp_path: Path, monkeypatch) -> None:
    first = tmp_path / "first"
    args = _train_args(square_data, first, tmp_path / "cache", "--epochs", "1")
    args[args.index("--arch") + 1] = "mobilenet_v2"
    assert main(args) == 0

    def no_network(*a, **kw):
        raise AssertionError("ImageNet weights were fetched although --init-from replaces them")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    args = _train_args(square_data, tmp_path / "second", tmp_path / "cache", "--epochs", "1", "--init-from", str(first))
    args[args.index("--arch") + 1] = "mobilenet_v2"
    args.remove("--no-pretrained")
    assert main(args) == 0


def test_init_from_refuses_another_architecture_or_class_set(square_data: Path, tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert main(_train_args(square_data, first, tmp_path / "cache", "--epochs", "1")) == 0
    args = _train_args(square_data, tmp_path / "b", tmp_path / "cache", "--epochs", "1", "--init-from", str(first))
    args[args.index("--arch") + 1] = "vgg_bn"
    assert main(args) == 2
    assert "is a 'simple_cnn', this run trains a 'vgg_bn'" in capsys.readouterr().err
    args = _train_args(
        square_data,
        tmp_path / "c",
        tmp_path / "cache",
        "--epochs",
        "1",
        "--init-from",
        str(first),
        "--merge",
        "all=plain,square",
    )
    assert main(args) == 2
    assert "differ from this data's ['all']" in capsys.readouterr().err
    args = _train_args(square_data, tmp_path / "d", tmp_path / "cache", "--epochs", "1", "--init-from", str(first))
    with pytest.warns(UserWarning, match="other seed; this run's validation split may hold scans it trained on"):
        assert main([*args, "--seed", "7"]) == 0


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _best_state(callbacks: dict) -> dict:
    """The state of the ModelCheckpoint that tracks the best validation macro-F1."""
    return next(v for k, v in callbacks.items() if k.startswith("ModelCheckpoint") and MONITOR in k)


def _default_sigint() -> None:
    # A test run started in the background (nohup, `cmd &`, some CI runners) inherits SIGINT as
    # ignored, and Python then installs no KeyboardInterrupt handler: restore it for the child.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "braintumor.cli", *args], env=env, preexec_fn=_default_sigint, **kw)


def _wait_for_epoch(last: Path, proc: subprocess.Popen, epoch: int, timeout: float = 600) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert proc.poll() is None, "training ended before it could be interrupted"
        if last.exists():
            try:
                if _ckpt(last)["epoch"] >= epoch:
                    return
            except Exception:  # being written right now
                pass
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill-9"])
def test_resume_continues_from_last_finished_epoch(square_data: Path, tmp_path: Path, sig: int) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    last, best = out / "checkpoints" / "last.ckpt", out / "checkpoints" / "best.ckpt"
    slow = [*_train_args(square_data, out, cache, "--epochs", "1000", "--early-stop-patience", "1000")]
    proc = _run_cli(slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_epoch(last, proc, epoch=2)
        proc.send_signal(sig)
        proc.wait(timeout=300)  # generous: a loaded CI machine can take a while to unwind Lightning
    finally:
        proc.kill()
    saved = _ckpt(last)
    done_epochs = saved["epoch"] + 1  # Lightning stores the index of the last finished epoch
    steps_per_epoch = saved["global_step"] // done_epochs
    best_before = _ckpt(best)["callbacks"]
    best_score_before = _best_state(best_before)["best_model_score"]

    total = done_epochs + 2
    resumed = _run_cli(
        [*_train_args(square_data, out, cache, "--epochs", str(total)), "--resume"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert f"resuming at epoch {done_epochs}" in log
    final = _ckpt(last)
    assert final["epoch"] == total - 1
    assert final["global_step"] == total * steps_per_epoch  # only the missing epochs were trained
    state = _best_state(final["callbacks"])
    assert state["best_model_score"] >= best_score_before  # the best checkpoint was kept, not reset
    assert best.exists() and (out / "model.safetensors").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(square_data: Path, tmp_path: Path) -> None:
    # with a frozen first epoch: DDP fixes the parameters it synchronises when it wraps the model, so a
    # backbone frozen by requires_grad and switched on later trained apart on each rank
    out = tmp_path / "run"
    args = _train_args(square_data, out, tmp_path / "cache", "--epochs", "2", "--freeze-epochs", "1")
    args += ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    proc = subprocess.run([sys.executable, "-m", "braintumor.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prints = sorted((out / "fingerprints").glob("rank*.txt"))
    assert [p.name for p in prints] == ["rank0.txt", "rank1.txt"]
    assert prints[0].read_text() == prints[1].read_text()


@pytest.mark.slow
def test_train_on_mixed_format_binary_set(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _train_args(shared_data / "chakrabarty-253", out, tmp_path / "cache", "--epochs", "1")
    assert main(args) == 0
    assert load_model(out).class_names == ["no", "yes"]


@pytest.mark.slow
def test_train_on_derived_binary_task(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    merge = "tumor=glioma,meningioma,pituitary"
    args = _train_args(shared_data / "nickparvar-7023", out, tmp_path / "cache", "--epochs", "1", "--merge", merge)
    assert main([*args, "--limit-train-batches", "5"]) == 0
    assert load_model(out).class_names == ["notumor", "tumor"]


def test_resume_keeps_the_split_and_reads_the_runs_own_config(square_data: Path, tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(_train_args(square_data, out, cache, "--epochs", "1")) == 0
    # another seed or validation share would move scans the run trained on into validation
    assert main([*_train_args(square_data, out, cache, "--epochs", "2", "--seed", "7"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume must keep the run's data split" in err and "seed: 42 -> 7" in err
    assert main([*_train_args(square_data, out, cache, "--epochs", "2", "--val-fraction", "0.3"), "--resume"]) == 2
    assert "val_fraction: 0.15 -> 0.3" in capsys.readouterr().err
    # --resume with only --out and --epochs goes on with the stored settings
    assert main(["train", "--out", str(out), "--epochs", "2", "--resume", "--cache-dir", str(cache)]) == 0
    assert TrainConfig.from_sources(out / "config.yaml").epochs == 2


def test_test_dir_is_scored_once_after_training(square_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = _train_args(square_data, out, tmp_path / "cache", "--epochs", "1", "--test-dir", str(square_data))
    assert main(args) == 2  # a root without a test split: refused before training, not after
    assert not out.exists()
    args[-1] = str(square_data / "Training")  # (a plumbing test: these are the training scans)
    assert main(args) == 0
    metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert metrics["n"] > 0 and "accuracy" in metrics
    assert "scored once" in capsys.readouterr().out


def test_yaml_numbers_without_a_decimal_point_are_numbers(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("data: d\nlr: 3e-4\nepochs: '4'\nweight_decay: 1e-5\n")
    cfg = TrainConfig.from_sources(tmp_path / "c.yaml")
    assert cfg.lr == 3e-4 and cfg.epochs == 4 and cfg.weight_decay == 1e-5
    (tmp_path / "bad.yaml").write_text("data: d\nlr: fast\n")
    with pytest.raises(ValueError, match="lr must be a number, not 'fast'"):
        TrainConfig.from_sources(tmp_path / "bad.yaml")


def test_offline_imagenet_weights_fail_before_the_run_folder_is_written(
    square_data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import urllib.error

    import torch

    def no_network(url: str, dst: str, *args, **kwargs) -> None:  # the network boundary
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    out = tmp_path / "run"
    args = ["train", "--data", str(square_data), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    args += ["--arch", "resnet50", "--pretrained", "--image-size", "64", "--num-workers", "0", "--epochs", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ImageNet weights for 'resnet50' are not available" in err and "Traceback" not in err
    assert not out.exists()  # no half-made run folder to trip a later --resume or a new run


def test_image_size_defaults_to_the_architectures_own(tmp_path: Path) -> None:
    from braintumor.models import model_info

    for arch in ("simple_cnn", "efficientnet_lite0", "efficientnet_lite2"):
        cfg = TrainConfig.from_sources(data="d", arch=arch)
        assert cfg.image_size == model_info(arch).default_image_size
    assert TrainConfig.from_sources(data="d", arch="efficientnet_lite2", image_size=192).image_size == 192
    with pytest.raises(ValueError, match="config: image_size must be a whole number of pixels from 32 to 1024"):
        TrainConfig.from_sources(data="d", image_size=16)
