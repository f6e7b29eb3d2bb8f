"""The LGG importer on small TIFF cases the test writes, and on the fetched data when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.cli import main
from braintumor.data import discover
from braintumor.data.sources import SliceOptions, import_lgg, read_slice_table
from braintumor.io import read_scan


def _head(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.36 * size)) ** 2 <= 1
    return np.where(inside, 60 + rng.integers(0, 120, (size, size)), 0).astype(np.uint8)


def _case(root: Path, case: str, masks: list[int], *, repeat_flair: bool = False, bad_mask: bool = False) -> None:
    """One case folder: a slice per entry of `masks` (its tumour area in px; -1: a blank slice, no head)."""
    rng = np.random.default_rng(len(case))
    folder = root / case
    folder.mkdir(parents=True)
    for n, area in enumerate(masks, start=1):
        t1, flair, t1c = _head(rng), _head(rng), _head(rng)
        if repeat_flair:
            t1c = flair
        image = np.stack([t1, flair, t1c], axis=-1) * (area != -1)
        mask = np.zeros((64, 64), np.uint8)
        side = int(np.sqrt(max(area, 0)))
        mask[20 : 20 + side, 20 : 20 + side] = 255
        if bad_mask:
            mask = np.zeros((32, 32), np.uint8)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{case}_{n}.tif")
        Image.fromarray(mask).save(folder / f"{case}_{n}_mask.tif")


@pytest.fixture()
def lgg_root(tmp_path: Path) -> Path:
    root = tmp_path / "kaggle_3m"
    _case(root, "TCGA_AA_0001_20000101", [0, 0, 49, 400, 900, -1])
    _case(root, "TCGA_BB_0002_20010101", [0, 225, 0], repeat_flair=True)
    _case(root, "TCGA_CC_0003_20020101", [0, 400], bad_mask=True)
    return root


def test_slices_are_labelled_by_their_masks_per_real_sequence(lgg_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = import_lgg(lgg_root, out, SliceOptions(min_tumour_px=100), progress=False)
    rows = read_slice_table(out)
    a = [r for r in rows if r["patient"] == "TCGA_AA_0001"]
    assert {r["sequence"] for r in a} == {"T1", "FLAIR", "T1c"}
    # slices 1-2 empty masks: notumor; 3 (49 px) left out; 4-5 glioma; 6 (no head) skipped
    assert sorted({(int(r["slice_index"]), r["label"]) for r in a}) == [
        (1, "notumor"), (2, "notumor"), (4, "glioma"), (5, "glioma"),
    ]  # fmt: skip
    b = [r for r in rows if r["patient"] == "TCGA_BB_0002"]
    assert {r["sequence"] for r in b} == {"T1", "FLAIR"}  # its third channel repeats FLAIR: not a sequence
    assert not [r for r in rows if r["patient"] == "TCGA_CC_0003"]
    problems = (out / "problems.txt").read_text()
    assert "TCGA_CC_0003_20020101" in problems and "inconsistent" in problems
    assert result.left_out["tumour under 100 px"] == 3 and result.left_out["little head"] == 3
    assert "skipped" in result.summary() and "TCGA_CC_0003" in result.summary()
    groups = (out / "groups.csv").read_text().splitlines()
    assert groups[0] == "path,group" and len({g.split(",")[1] for g in groups[1:]}) == 2  # one group per patient
    index = discover(out)  # the toolkit reads the result as it is
    assert index.class_names == ["glioma", "notumor"]
    scan = read_scan(out / a[0]["path"])
    assert scan.shape == (64, 64) and scan.pixels.dtype == np.uint8


def test_every_kth_slice_and_the_command(lgg_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["data", "import", str(lgg_root), "--layout", "lgg", "--out", str(out), "--every", "2", "--quiet"]
    assert main(args) == 0
    assert {int(r["slice_index"]) for r in read_slice_table(out)} <= {1, 3, 5}
    assert "slices of 2 patients" in capsys.readouterr().out
    assert main(["data", "import", str(tmp_path / "none"), "--layout", "lgg", "--out", str(out)]) == 2


def test_the_fetched_lgg_cases(external_data: Path, tmp_path: Path) -> None:
    root = external_data / "lgg" / "kaggle_3m"
    cases = sorted(p for p in root.iterdir() if p.is_dir())[:3]
    subset = tmp_path / "subset"
    subset.mkdir()
    for case in cases:
        (subset / case.name).symlink_to(case, target_is_directory=True)
    result = import_lgg(subset, tmp_path / "out", progress=False)
    rows = read_slice_table(tmp_path / "out")
    assert len({r["patient"] for r in rows}) == 3 and not result.problems
    assert {r["label"] for r in rows} == {"glioma", "notumor"}
    assert {r["sequence"] for r in rows} <= {"T1", "FLAIR", "T1c"} and "FLAIR" in {r["sequence"] for r in rows}


def test_every_kth_tumour_free_slice(lgg_root: Path, tmp_path: Path) -> None:
    def normal_slices(every: int) -> dict[tuple[str, str], list[int]]:
        out = tmp_path / f"normal{every}"
        import_lgg(lgg_root, out, SliceOptions(normal_every=every), progress=False)
        kept: dict[tuple[str, str], list[int]] = {}
        for r in read_slice_table(out):
            if r["label"] == "notumor":
                kept.setdefault((r["patient"], r["sequence"]), []).append(int(r["slice_index"]))
        return kept

    everything, halved = normal_slices(1), normal_slices(2)
    assert everything and halved.keys() == everything.keys()
    for key, indices in everything.items():
        assert sorted(halved[key]) == sorted(indices)[::2]  # the 1st, 3rd, ... tumour-free slice of each series
    with pytest.raises(ValueError, match="normal_every"):
        SliceOptions(normal_every=0)
