"""Decode cache: decode once per (content, preprocessing), invalidate on new bytes, safe concurrent writes."""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import braintumor.data.cache as cache_module
from braintumor.data import DecodeCache, Preprocess, UncachedDecoder, load_preprocessed
from braintumor.io import ScanReadError

ODD = "Meningioma (de Baixo Grau, Atípico) T1C+"
PP = Preprocess(image_size=64)


@pytest.fixture
def scan(tmp_path, samples_dir) -> Path:
    folder = tmp_path / "data" / ODD
    folder.mkdir(parents=True)
    return Path(shutil.copy(samples_dir / "glioma" / "Te-gl_0013.jpg", folder / "scan (1) +é.jpg"))


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """Every decode the cache performs, in order."""
    calls: list[Path] = []
    real = cache_module._decode

    def counting(data: bytes, path: Path, preprocess: Preprocess) -> np.ndarray:
        calls.append(path)
        return real(data, path, preprocess)

    monkeypatch.setattr(cache_module, "_decode", counting)
    return calls


def test_get_returns_the_preprocessed_array(tmp_path, scan):
    arr = DecodeCache(tmp_path / "cache", PP).get(scan)
    assert arr.dtype == np.uint8 and arr.shape == (64, 64)
    np.testing.assert_array_equal(arr, load_preprocessed(scan, PP))
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 1 and PP.key() in entries[0].parts


def test_second_read_does_not_decode_even_in_a_new_process(tmp_path, scan, decodes):
    cache = DecodeCache(tmp_path / "cache", PP)
    first = cache.get(scan)
    np.testing.assert_array_equal(cache.get(scan), first)
    assert len(decodes) == 1
    fresh = DecodeCache(tmp_path / "cache", PP)  # no in-process memo: found by content hash
    np.testing.assert_array_equal(fresh.get(scan), first)
    assert scan in fresh
    assert len(decodes) == 1


def test_same_content_under_another_name_reuses_the_entry(tmp_path, scan, decodes):
    cache = DecodeCache(tmp_path / "cache", PP)
    cache.get(scan)
    twin = Path(shutil.copy(scan, tmp_path / "copy, of it.jpg"))
    cache.get(twin)
    assert decodes == [scan]


def test_changed_file_gets_a_new_entry(tmp_path, scan, decodes):
    cache = DecodeCache(tmp_path / "cache", PP)
    before = cache.get(scan)
    mirrored = Image.open(scan).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    mirrored.save(buf, format="JPEG", quality=95)
    scan.write_bytes(buf.getvalue())
    after = cache.get(scan)
    assert len(decodes) == 2
    assert not np.array_equal(before, after)
    assert np.abs(after.astype(int) - before[:, ::-1].astype(int)).mean() < 3  # it is the new content
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


def test_other_preprocessing_is_a_separate_entry(tmp_path, scan, decodes):
    DecodeCache(tmp_path / "cache", PP).get(scan)
    other = DecodeCache(tmp_path / "cache", Preprocess(image_size=64, crop=False)).get(scan)
    assert len(decodes) == 2 and other.shape == (64, 64)
    assert DecodeCache(tmp_path / "cache", Preprocess(image_size=32)).get(scan).shape == (32, 32)


def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path, scan, decodes, caplog):
    cache = DecodeCache(tmp_path / "cache", PP)
    good = cache.get(scan)
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    entry.write_bytes(entry.read_bytes()[:60])
    with caplog.at_level(logging.WARNING, logger="braintumor.data.cache"):
        again = DecodeCache(tmp_path / "cache", PP).get(scan)
    np.testing.assert_array_equal(again, good)
    assert len(decodes) == 2 and "ignoring unreadable entry" in caplog.text
    np.testing.assert_array_equal(np.load(entry), good)


def test_unreadable_files_raise_scan_read_error_naming_them(tmp_path):
    cache = DecodeCache(tmp_path / "cache", PP)
    bad = tmp_path / f"{ODD}.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ScanReadError, match=r"Atípico\) T1C\+\.jpg"):
        cache.get(bad)
    with pytest.raises(ScanReadError, match="file not found"):
        cache.get(tmp_path / "missing.jpg")
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_cache_pickles_and_uncached_decoder_decodes_every_time(tmp_path, scan, decodes):
    cache = pickle.loads(pickle.dumps(DecodeCache(tmp_path / "cache", PP)))
    assert cache.get(scan).shape == (64, 64)
    plain = UncachedDecoder(PP)
    np.testing.assert_array_equal(plain.get(scan), cache.get(scan))
    plain.get(scan)
    assert len(decodes) == 3


def _writer(root: str, paths: list[str], barrier) -> None:
    cache = DecodeCache(root, PP)
    barrier.wait()  # both processes start decoding and writing the same entries together
    for p in paths:
        cache.get(p)


def test_two_processes_writing_the_same_entries_leave_valid_files(tmp_path, samples_dir):
    paths = [str(p) for p in sorted(samples_dir.rglob("*.jpg"))]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "c"), paths, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    entries = list((tmp_path / "c").rglob("*.npy"))
    assert len(entries) == len(paths)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.suffix != ".npy"]  # no temp files
    stored = sorted((np.load(e).tobytes() for e in entries), key=hash)  # read the files themselves
    expected = sorted((load_preprocessed(p, PP).tobytes() for p in paths), key=hash)
    assert stored == expected
