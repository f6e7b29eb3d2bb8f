"""The volume importer on synthetic heads the test writes, and on the fetched IXI volumes when they are there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from braintumor.data.sources import SliceOptions, import_volumes, read_slice_table
from braintumor.data.sources.volumes import sequence_of

SHAPE = (40, 48, 24)  # x (R-L), y (P-A), z (I-S) voxels of 2 x 2 x 4 mm


def _head(lesion: bool = False) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]].astype(np.float32)
    head = ((x - 20) / 17) ** 2 + ((y - 24) / 21) ** 2 + ((z - 12) / 10) ** 2 <= 1
    volume = np.where(head, 100.0, 0.0).astype(np.float32)
    volume[28:34, 38:44, 14:20] = 400  # a marker: RAS+ x grows to the patient's right, so right, anterior, superior
    mask = np.zeros(SHAPE, np.uint8)
    if lesion:
        mask[14:22, 20:28, 8:14] = 1
        volume[mask > 0] = 250
    return volume, mask


def _save(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 4.0, 1.0])), str(path))


@pytest.fixture()
def volumes(tmp_path: Path) -> Path:
    root = tmp_path / "vols"
    root.mkdir()
    for name, lesion in (("sub01_T1", False), ("sub02_flair", True)):
        volume, mask = _head(lesion)
        _save(root / f"{name}.nii.gz", volume)
        _save(root / f"{name}_seg.nii.gz", mask)
    _save(root / "sub03_T2.nii.gz", np.zeros((*SHAPE, 2), np.float32))  # 4-D
    nan = _head()[0]
    nan[0, 0, 0] = np.nan
    _save(root / "sub04_T1.nii.gz", nan)
    _save(root / "sub04_T1_seg.nii.gz", np.zeros(SHAPE, np.uint8))
    _save(root / "sub05_T1.nii.gz", _head()[0])
    _save(root / "sub05_T1_seg.nii.gz", np.zeros((10, 10, 10), np.uint8))  # another shape
    return root


def test_volumes_are_resliced_in_three_planes_and_labelled_by_masks(volumes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = import_volumes(volumes, out, SliceOptions(min_tumour_px=20), source="syn", mask_suffix="_seg")
    rows = read_slice_table(out)
    assert {r["patient"] for r in rows} == {"sub01", "sub02"}
    assert {r["plane"] for r in rows} == {"axial", "coronal", "sagittal"}
    assert {(r["patient"], r["sequence"]) for r in rows} == {("sub01", "T1"), ("sub02", "FLAIR")}
    assert {r["label"] for r in rows if r["patient"] == "sub01"} == {"notumor"}
    assert {r["label"] for r in rows if r["patient"] == "sub02"} == {"glioma", "notumor"}
    reasons = dict(result.problems)
    assert "4-D" in reasons[str(volumes / "sub03_T2.nii.gz")]
    assert "NaN" in reasons[str(volumes / "sub04_T1.nii.gz")]
    assert "inconsistent" in reasons[str(volumes / "sub05_T1.nii.gz")]
    # square pixels: a coronal slice spans x (40 x 2 mm) by z (24 x 4 mm), so 40 x 48 px after resampling
    coronal = next(r for r in rows if r["plane"] == "coronal")
    assert Image.open(out / coronal["path"]).size == (40, 48)


def test_every_kth_tumour_free_slice_of_a_masked_series(volumes: Path, tmp_path: Path) -> None:
    def count(normal_every: int) -> Counter:
        out = tmp_path / f"n{normal_every}"
        options = SliceOptions(min_tumour_px=20, min_head=0.0, normal_every=normal_every)
        import_volumes(volumes, out, options, source="syn", mask_suffix="_seg", planes=("axial",))
        return Counter((r["patient"], r["label"]) for r in read_slice_table(out))

    everything, thinned = count(1), count(3)
    assert thinned[("sub02", "glioma")] == everything[("sub02", "glioma")]  # tumour slices all kept
    assert thinned[("sub02", "notumor")] == -(-everything[("sub02", "notumor")] // 3)
    assert thinned[("sub01", "notumor")] == -(-everything[("sub01", "notumor")] // 3)  # an empty mask: all thinned


def test_slices_are_shown_as_radiologists_read_them(volumes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_volumes(volumes, out, SliceOptions(min_head=0.0), source="syn", mask_suffix="_seg", planes=("axial",))
    marked = [r for r in read_slice_table(out) if r["patient"] == "sub01" and int(r["slice_index"]) == 17]
    pixels = np.asarray(Image.open(out / marked[0]["path"]))
    rows, cols = np.nonzero(pixels == pixels.max())
    # anterior at the top; the patient's right (the marker) on the image's left, as if seen from the feet
    assert rows.mean() < pixels.shape[0] / 3 and cols.mean() < pixels.shape[1] / 3


def test_volumes_without_masks_need_a_label(volumes: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give --label CLASS"):
        import_volumes(volumes, tmp_path / "out", source="syn")


def test_sequence_names() -> None:
    assert sequence_of("IXI132-HH-1415_T1.nii.gz") == "T1"
    assert sequence_of("MRHR_T1_AX_POST_GAD_SE_13_se2d1r_t1c.nii.gz") == "T1c"
    assert sequence_of("AXIAL_FLAIR_RF2_150_IR_7_fla.nii.gz") == "FLAIR"
    assert sequence_of("MRHR_T2_AX_SE_2_tse2d1_11_t2.nii.gz") == "T2"
    assert sequence_of("scan.nii") == "other"


def test_the_fetched_ixi_volumes(external_data: Path, tmp_path: Path) -> None:
    root = external_data / "ixi"
    first = sorted(root.rglob("*.nii.gz"))[:2]
    subset = tmp_path / "subset"
    subset.mkdir()
    for path in first:
        (subset / path.name).symlink_to(path)
    result = import_volumes(subset, tmp_path / "out", SliceOptions(every=6), source="ixi", label="notumor")
    rows = read_slice_table(tmp_path / "out")
    assert not result.problems and len({r["patient"] for r in rows}) == 2
    assert {r["plane"] for r in rows} == {"axial", "coronal", "sagittal"} and {r["sequence"] for r in rows} == {"T1"}
