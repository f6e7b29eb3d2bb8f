"""Readability check: every file read once, bad ones reported by name and skipped, cache warmed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from braintumor.cli import main
from braintumor.data import DecodeCache, Preprocess, check_readable, discover

ODD = "Meningioma (de Baixo Grau, Atípico) T1C+"
BAD_NAME = "corrupt (copy) +ü.jpg"


@pytest.fixture
def folder(tmp_path, samples_dir) -> Path:
    """Two classes of good scans and one truncated JPEG among them."""
    for cls in (ODD, "glioma"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for src in sorted(samples_dir.rglob("*.jpg"))[:4]:
            shutil.copy(src, tmp_path / "data" / cls / src.name)
    good = (samples_dir / "glioma" / "Te-gl_0013.jpg").read_bytes()
    (tmp_path / "data" / ODD / BAD_NAME).write_bytes(good[: len(good) // 3])
    return tmp_path / "data"


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_file_is_reported_by_name_and_skipped(folder, workers, caplog):
    # Start OpenCV's thread pool first, as training does before a check: forked workers must still run.
    cv2.GaussianBlur(np.zeros((1500, 1500), np.uint8), (15, 15), 0)
    samples = discover(folder).samples()
    with caplog.at_level(logging.WARNING, logger="braintumor.data.readcheck"):
        good, bad = check_readable(samples, workers=workers, progress=False)
    assert len(good) == 8 and len(bad) == 1
    path, message = bad[0]
    assert path.name == BAD_NAME and BAD_NAME in message
    assert path not in {s.path for s in good}
    assert [s for s in samples if s.path != path] == good  # input order kept
    assert BAD_NAME in caplog.text


def test_check_with_cache_fills_it(folder, tmp_path):
    cache = DecodeCache(tmp_path / "cache", Preprocess(image_size=32))
    good, bad = check_readable(discover(folder).samples(), cache=cache, workers=2, progress=False)
    assert len(good) == 8 and len(bad) == 1
    assert all(s.path in cache for s in good)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4  # 4 distinct images, each stored once


def test_empty_input():
    assert check_readable([], progress=False) == ([], [])


def test_cli_data_check_reports_and_exits_by_strictness(folder, tmp_path, capsys):
    assert main(["data", "check", str(folder), "--quiet", "--out", str(tmp_path / "bad.tsv")]) == 0
    captured = capsys.readouterr()
    assert "8 readable, 1 unreadable of 9 files" in captured.out
    assert BAD_NAME in captured.err
    assert BAD_NAME in (tmp_path / "bad.tsv").read_text(encoding="utf-8")
    assert main(["data", "check", str(folder), "--quiet", "--strict"]) == 1
