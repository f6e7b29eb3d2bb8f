"""Coarse labels ("one of these classes") in training: the loss, the data plumbing and its errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from braintumor.cli import main
from braintumor.data import parse_label_sets
from braintumor.training.config import TrainConfig
from braintumor.training.module import ClassifierModule, label_set_loss

from .conftest import TINY, make_weak_folder


def test_parse_label_sets() -> None:
    assert parse_label_sets("yes=glioma, meningioma,pituitary; no=notumor") == {
        "yes": ("glioma", "meningioma", "pituitary"),
        "no": ("notumor",),
    }
    for spec, message in [("yes", "no '='"), ("=a", "empty folder"), ("yes=", "lists no class"), ("a=x;a=y", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_label_sets(spec)


def test_label_set_loss_is_cross_entropy_for_one_class_and_zero_for_all() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    one = torch.tensor([[False, True, False], [True, False, False]])
    assert torch.allclose(label_set_loss(logits, one), F.cross_entropy(logits, torch.tensor([1, 0]), reduction="none"))
    assert torch.allclose(label_set_loss(logits, torch.ones(2, 3, dtype=torch.bool)), torch.zeros(2), atol=1e-6)
    p = logits.softmax(1)
    two = torch.tensor([[True, True, False]] * 2)
    assert torch.allclose(label_set_loss(logits, two), -torch.log(p[:, 0] + p[:, 1]))


def _module(label_sets, class_weights=None) -> ClassifierModule:
    cfg = TrainConfig(data="unused", arch="simple_cnn", pretrained=False, image_size=64)
    return ClassifierModule(cfg, ["a", "b", "c"], class_weights, label_sets=label_sets)


def test_exact_batches_get_exactly_the_old_loss() -> None:
    module = _module([("a", "b")], class_weights=[0.5, 1.0, 3.0])
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    assert torch.equal(module.training_loss(logits, y), module.loss_fn(logits, y))


def test_mixed_batch_is_the_weighted_mean_of_both_losses() -> None:
    weights = [0.5, 1.0, 3.0]
    module = _module([("a", "b"), ("c",)], class_weights=weights)
    logits = torch.randn(4, 3)
    y = torch.tensor([2, 0, -1, -2])  # exact c, exact a, "a or b", "c" (set 1)
    ce = F.cross_entropy(logits[:2], y[:2], reduction="none")
    weak = label_set_loss(logits[2:], torch.tensor([[True, True, False], [False, False, True]]))
    expected = (3.0 * ce[0] + 0.5 * ce[1] + weak.sum()) / (3.0 + 0.5 + 2)
    assert torch.allclose(module.training_loss(logits, y), expected)
    only_weak = module.training_loss(logits[2:], y[2:])
    assert torch.allclose(only_weak, weak.mean())


def test_a_label_set_moves_probability_out_of_the_classes_it_excludes() -> None:
    module = _module([("a", "b")])
    logits = torch.zeros(1, 3, requires_grad=True)
    loss = module.training_loss(logits, torch.tensor([-1]))
    loss.backward()
    # descending the gradient raises a and b equally and lowers c: the set says nothing about a vs b
    assert logits.grad[0, 0] == pytest.approx(logits.grad[0, 1]) and logits.grad[0, 0] < 0 < logits.grad[0, 2]
    assert loss.item() == pytest.approx(-math.log(2 / 3))


def test_train_with_weak_labels_counts_and_reports_them(square_data: Path, tmp_path: Path) -> None:
    weak = make_weak_folder(square_data, tmp_path, corrupt=True)
    out = tmp_path / "run"
    args = ["train", "--data", str(square_data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    args += ["--epochs", "1", "--weak-data", str(weak), "--weak-labels", "marked=square", "--weak-repeat", "2"]
    assert main(args) == 0
    data = json.loads((out / "data.json").read_text())
    assert data["weak"] == 6 and data["label_sets"] == {"marked": ["square"]}
    assert data["train"] + data["val"] == 48  # validation holds exact labels only
    unreadable = (out / "unreadable.txt").read_text()
    assert "broken.png" in unreadable and data["unreadable"] == 1
    assert TrainConfig.from_sources(out / "config.yaml").weak_labels == "marked=square"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("other=square", "folder\\(s\\) \\['marked'\\] are not in weak_labels"),
        ("marked=square;gone=plain", "names folder\\(s\\) \\['gone'\\] that hold no scans"),
        ("marked=tumour", "lists \\['tumour'\\], not among the classes"),
    ],
)
def test_weak_label_mistakes_stop_the_run_with_a_clear_message(
    square_data: Path, tmp_path: Path, capsys, labels: str, message: str
) -> None:
    weak = make_weak_folder(square_data, tmp_path)
    args = ["train", "--data", str(square_data), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c")]
    args += [*TINY, "--epochs", "1", "--weak-data", str(weak), "--weak-labels", labels]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(weak) in err or "weak_labels" in err
    assert re.search(message, err), err


def test_weak_data_needs_its_labels() -> None:
    with pytest.raises(ValueError, match="weak_data and weak_labels go together"):
        TrainConfig.from_sources(data="d", weak_data="w")
    with pytest.raises(ValueError, match="weak_repeat must be 1-20"):
        TrainConfig.from_sources(data="d", weak_data="w", weak_labels="a=b", weak_repeat=0)
