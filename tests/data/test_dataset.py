"""ScanDataset: (tensor, class index) pairs through the cache, clear label errors, safe in worker processes."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from braintumor.data import DecodeCache, Preprocess, Sample, ScanDataset, build_transforms, discover
from braintumor.io import ScanReadError

ODD = "Meningioma (de Baixo Grau, Atípico) T1C+"


@pytest.fixture
def index(tmp_path, samples_dir):
    for cls, sub in ((ODD, "meningioma"), ("glioma", "glioma"), ("pituitary", "pituitary")):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for src in (samples_dir / sub).glob("*.jpg"):
            shutil.copy(src, tmp_path / "data" / cls / f"{src.stem} (1)+ü.jpg")
    return discover(tmp_path / "data")


@pytest.fixture
def dataset(index, tmp_path) -> ScanDataset:
    cache = DecodeCache(tmp_path / "cache", Preprocess(image_size=32))
    tf = build_transforms(None, train=True, in_chans=3, mean=[0.5], std=[0.25])
    return ScanDataset(index.samples(), index.class_names, cache, tf)


def test_items_are_tensors_with_class_indices(dataset, index):
    assert len(dataset) == 6
    assert dataset.class_names == ["Meningioma (de Baixo Grau, Atípico) T1C+", "glioma", "pituitary"]
    for i in range(len(dataset)):
        x, y = dataset[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert dataset.class_names[y] == index.samples()[i].label
    assert dataset.class_counts() == [2, 2, 2]


def test_classes_without_samples_are_allowed(index, tmp_path):
    names = [*index.class_names, "notumor"]
    ds = ScanDataset(index.samples(), names, DecodeCache(tmp_path / "c", Preprocess(image_size=32)), lambda a: a)
    assert ds.class_counts() == [2, 2, 2, 0]


def test_unknown_label_is_a_clear_error(index, tmp_path):
    cache = DecodeCache(tmp_path / "c", Preprocess(image_size=32))
    with pytest.raises(ValueError, match=r"labels \['Meningioma \(de Baixo Grau, Atípico\) T1C\+'\] are not among"):
        ScanDataset(index.samples(), ["glioma", "pituitary"], cache, lambda a: a)
    with pytest.raises(ValueError, match="more than once"):
        ScanDataset(index.samples(), [*index.class_names, "glioma"], cache, lambda a: a)


def test_unreadable_file_raises_naming_it(tmp_path):
    bad = tmp_path / "broken scan.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    ds = ScanDataset([Sample(bad, "x")], ["x"], DecodeCache(tmp_path / "c", Preprocess(image_size=32)), lambda a: a)
    with pytest.raises(ScanReadError, match=r"broken scan\.jpg"):
        ds[0]


def test_pickles_and_loads_in_a_spawned_worker(dataset):
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.targets == dataset.targets and clone.samples == dataset.samples
    # spawn pickles the dataset into a fresh interpreter, the strictest case (macOS, Windows default)
    loader = DataLoader(dataset, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    assert torch.cat([b[1] for b in batches]).tolist() == dataset.targets
    assert len(list(Path(dataset.cache.folder).rglob("*.npy"))) == 6  # the worker filled the shared cache
