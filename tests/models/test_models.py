"""Registry-driven model tests: every registered model is tested the moment it is registered."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from braintumor.models import (
    create_model,
    gradcam_layer,
    list_models,
    load_model,
    model_info,
    register_model,
    save_checkpoint,
)

SIZE = 64  # small enough to be fast, large enough that every Grad-CAM layer keeps a 2x2 map or more
NUM_CLASSES = 3


def _make(name: str, tiny_options, in_chans: int = 3, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, in_chans=in_chans, **tiny_options(name), **kwargs)


def test_every_family_is_registered() -> None:
    expected = {"vgg_bn", "simple_cnn", "efficientnet_b0", "resnet50", "vgg16_bn", "mobilenet_v2", "efficientnet_lite0"}
    expected |= {"efficientnet_lite1", "efficientnet_lite2"}
    assert set(list_models()) == expected


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str, in_chans: int, tiny_options) -> None:
    model = _make(name, tiny_options, in_chans)
    logits = model(torch.randn(2, in_chans, SIZE, SIZE))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == in_chans
    # Gradient reaches both ends of the network: the stem and the new head.
    assert convs[0].weight.grad is not None and convs[0].weight.grad.abs().sum() > 0
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_models())
def test_dropout_sits_before_the_head(name: str, tiny_options) -> None:
    modules = list(_make(name, tiny_options, drop_rate=0.35).modules())
    last_linear = max(i for i, m in enumerate(modules) if isinstance(m, nn.Linear))
    before = modules[last_linear - 1]
    assert isinstance(before, nn.Dropout) and before.p == 0.35


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_cam_layer_is_the_last_block_at_stride_8(variant: int) -> None:
    # The localisation study chose the end of the stride-8 stage for Lite0; Lite1/2 get the same stage.
    name = f"efficientnet_lite{variant}"
    model = create_model(name, num_classes=4, pretrained=False).eval()
    layer = gradcam_layer(model)
    n_blocks = len(model.blocks)
    index = int(model_info(name).gradcam_layer.split(".")[1])
    shapes = []
    handle = layer.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 192, 192))
    finally:
        handle.remove()
    assert shapes[0][2:] == (24, 24)  # stride 8
    assert model.blocks[index + 1].depthwise[0].stride == (2, 2)  # the next block starts the stride-16 stage
    assert index < n_blocks - 1


@pytest.mark.parametrize("name", list_models())
def test_gradcam_layer_gives_spatial_activations_and_gradients(name: str, tiny_options) -> None:
    model = _make(name, tiny_options).eval()
    layer = gradcam_layer(model)
    assert layer is model.get_submodule(model_info(name).gradcam_layer)
    captured = []

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        model(torch.randn(1, 3, SIZE, SIZE))[0, 1].backward()
    finally:
        handle.remove()
    (act,) = captured
    assert act.ndim == 4 and act.shape[2] >= 2 and act.shape[3] >= 2
    assert act.grad is not None and act.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip_gives_identical_outputs(name: str, tiny_options, tmp_path) -> None:
    model = _make(name, tiny_options, in_chans=1)
    # Non-default BatchNorm statistics, so a checkpoint that dropped buffers would give other outputs.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(2, 1, SIZE, SIZE)
    expected = model(x)
    save_checkpoint(
        tmp_path / "model",
        model,
        arch=name,
        num_classes=NUM_CLASSES,
        in_chans=1,
        class_names=["a", "b", "c"],
        image_size=SIZE,
        preprocess={"crop": False},
        normalization={"mean": [0.5], "std": [0.25]},
    )
    loaded = load_model(tmp_path / "model.json")
    assert loaded.arch == name and loaded.in_chans == 1 and loaded.class_names == ["a", "b", "c"]
    assert not loaded.model.training
    with torch.no_grad():
        assert torch.equal(loaded.model(x), expected)


def test_model_options_survive_a_checkpoint(tmp_path) -> None:
    model = create_model("vgg_bn", num_classes=2, width=4)
    normalization = {"mean": [0.5] * 3, "std": [0.5] * 3}
    save_checkpoint(
        tmp_path,
        model,
        arch="vgg_bn",
        num_classes=2,
        in_chans=3,
        class_names=["no", "yes"],
        image_size=32,
        preprocess={},
        normalization=normalization,
    )
    loaded = load_model(tmp_path)
    assert loaded.model.creation_args["options"] == {"width": 4}
    assert loaded.model.features[0].out_channels == 4


def test_lite0_one_channel_stem_is_the_sum_of_the_rgb_stem() -> None:
    rgb = create_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True).eval()
    gray = create_model("efficientnet_lite0", num_classes=2, in_chans=1, pretrained=True).eval()
    assert torch.allclose(gray.stem[0].weight, rgb.stem[0].weight.sum(dim=1, keepdim=True))
    # With the same head, a gray image through the 1-channel model equals it replicated through the RGB one.
    gray.classifier.load_state_dict(rgb.classifier.state_dict())
    x = torch.rand(1, 1, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(gray(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-5)


def test_unknown_name_lists_the_available_models() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet51'") as err:
        create_model("resnet51", num_classes=2)
    assert all(name in str(err.value) for name in list_models())
    with pytest.raises(ValueError, match="available models"):
        model_info("EfficientNet-Lite0")  # no aliases, no case folding


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2, "in_chans": 2}, "in_chans"),
        ({"num_classes": 2, "drop_rate": 1.0}, "drop_rate"),
        ({"num_classes": 2, "depth": 3}, "no option depth"),
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("simple_cnn", **kwargs)


def test_pretrained_request_for_a_scratch_model_says_what_to_do() -> None:
    assert not model_info("vgg_bn").has_pretrained
    with pytest.raises(ValueError, match="--no-pretrained"):
        create_model("vgg_bn", num_classes=2, pretrained=True)


def test_a_name_cannot_be_registered_twice() -> None:
    def simple_cnn(*, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float) -> nn.Module:
        return nn.Linear(1, 1)

    with pytest.raises(ValueError, match="already registered"):
        register_model(image_size=32, gradcam_layer="x")(simple_cnn)


def test_gradcam_layer_refuses_a_model_not_made_by_the_registry() -> None:
    with pytest.raises(ValueError, match="create_model"):
        gradcam_layer(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_model_info_normalization_for_one_channel() -> None:
    info = model_info("resnet50")
    norm = info.normalization(1)
    assert norm is not None and len(norm["mean"]) == 1
    assert norm["mean"][0] == pytest.approx(sum(info.mean) / 3)
    assert model_info("simple_cnn").normalization(3) is None
