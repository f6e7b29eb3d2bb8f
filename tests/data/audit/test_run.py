"""run_audit and `braintumor data audit`: a synthetic dataset with one planted duplicate of each kind, and real data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from braintumor.cli import main
from braintumor.data.audit import run_audit
from braintumor.data.audit.match import Thresholds

# Each planted test image and the kind the audit must give it (None: no duplicate in training).
EXPECTED = {
    "Testing/glioma/exact.jpg": "exact",
    "Testing/glioma/reencoded.jpg": "copy",
    "Testing/meningioma/resized.png": "copy",
    "Testing/meningioma/rgb.jpg": "copy",
    "Testing/notumor/mirror_h.jpg": "mirror",
    "Testing/notumor/mirror_v.jpg": "mirror",
    "Testing/pituitary/adjacent.jpg": "near",
    "Testing/notumor/contrast.jpg": "near",
    "Testing/glioma/conflict.jpg": "copy",
    "Testing/pituitary/phantom_rgb.png": "exact",
    "Testing/meningioma/clean.png": None,
}
TRAIN_ONLY = {"Training/notumor/phantom_b.png", "Training/glioma/phantom_c.png"}


def _save(path: Path, pixels: np.ndarray, mode: str = "L", **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, **kw)


def _adjacent_slice(img: np.ndarray) -> np.ndarray:
    """A stand-in for the next slice of the same scan: slightly scaled and turned anatomy, 20 % darker."""
    h, w = img.shape
    warp = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.04)
    moved = cv2.warpAffine(img, warp, (w, h), flags=cv2.INTER_LINEAR)
    return (moved.astype(np.float32) * 0.8).astype(np.uint8)


def _build(root: Path, samples: Path, phantom, gray) -> None:
    s = {p.stem: p for p in samples.glob("*/*.jpg")}
    tr, te = root / "Training", root / "Testing"
    for cls, stem, name in [
        ("glioma", "Te-gl_0013", "g1.jpg"),
        ("glioma", "Te-gl_0013", "g1_dup.jpg"),  # within-train exact duplicate
        ("glioma", "Te-gl_0026", "g2.jpg"),
        ("meningioma", "Te-me_0115", "m1.jpg"),
        ("notumor", "Te-no_0010", "n1.jpg"),
        ("notumor", "Te-no_0224", "n2.jpg"),
        ("pituitary", "Te-pi_0013", "p1.jpg"),
        ("pituitary", "Te-pi_0039", "p2.jpg"),
    ]:
        (tr / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(s[stem], tr / cls / name)
    _save(tr / "meningioma/m2_gray.jpg", gray(s["Te-me_0142"]), quality=95)
    _save(tr / "pituitary/phantom_a.png", phantom(1))
    _save(tr / "notumor/phantom_b.png", phantom(2))
    _save(tr / "glioma/phantom_c.png", phantom(4))

    (te / "glioma").mkdir(parents=True)
    shutil.copy(s["Te-gl_0013"], te / "glioma/exact.jpg")
    _save(te / "glioma/reencoded.jpg", gray(s["Te-gl_0026"]), quality=40)
    m1 = gray(s["Te-me_0115"])
    _save(te / "meningioma/resized.png", cv2.resize(m1, (300, 300), interpolation=cv2.INTER_AREA))
    _save(te / "meningioma/rgb.jpg", gray(tr / "meningioma/m2_gray.jpg"), mode="RGB", quality=85)
    _save(te / "notumor/mirror_h.jpg", gray(s["Te-no_0010"])[:, ::-1].copy(), quality=90)
    _save(te / "notumor/mirror_v.jpg", gray(s["Te-no_0224"])[::-1].copy(), quality=90)
    _save(te / "pituitary/adjacent.jpg", _adjacent_slice(gray(s["Te-pi_0013"])), quality=90)
    gamma = (255 * (gray(s["Te-no_0010"]) / 255.0) ** 1.3).astype(np.uint8)  # same picture, other contrast
    _save(te / "notumor/contrast.jpg", gamma, quality=90)
    _save(te / "glioma/conflict.jpg", gray(s["Te-pi_0039"]), quality=80)  # a pituitary scan filed as glioma
    _save(te / "pituitary/phantom_rgb.png", phantom(1), mode="RGB")  # same pixels as phantom_a.png
    _save(te / "meningioma/clean.png", phantom(3))
    (te / "glioma/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path, phantom, gray) -> Path:
    root = tmp_path_factory.mktemp("planted")
    _build(root, samples_dir, phantom, gray)
    return root


@pytest.fixture(scope="module")
def audited(planted: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("audit_out")
    return run_audit(planted, out_dir=out, examples=2, progress=False), out


def _strongest_by_test(pairs: list[dict]) -> dict[str, str]:
    order = ["exact", "copy", "mirror", "near"]
    best: dict[str, str] = {}
    for p in pairs:
        if p["split_a"] == "test" and p["split_b"] == "train":
            k = best.get(p["a"])
            best[p["a"]] = p["kind"] if k is None else min(k, p["kind"], key=order.index)
    return best


def test_each_planted_duplicate_gets_its_kind(audited) -> None:
    result, _ = audited
    found = _strongest_by_test(result.pairs)
    for path, kind in EXPECTED.items():
        assert found.get(path) == kind, f"{path}: expected {kind}, found {found.get(path)}"


def test_pixel_identical_files_are_exact_by_pixels(audited) -> None:
    result, _ = audited
    pair = next(p for p in result.pairs if p["a"] == "Testing/pituitary/phantom_rgb.png")
    assert pair["b"] == "Training/pituitary/phantom_a.png" and pair["exact_by"] == "pixels"


def test_mirrors_name_their_axis(audited) -> None:
    result, _ = audited
    mirrors = {p["a"]: p["mirror"] for p in result.pairs if p["kind"] == "mirror"}
    assert mirrors == {"Testing/notumor/mirror_h.jpg": "h", "Testing/notumor/mirror_v.jpg": "v"}


def test_lists_are_relative_and_complete(audited) -> None:
    result, out = audited
    leaking = (out / "test_leaking.txt").read_text().splitlines()
    clean = (out / "test_clean.txt").read_text().splitlines()
    train_ok = (out / "train_minus_leaks.txt").read_text().splitlines()
    assert set(leaking) == {p for p, k in EXPECTED.items() if k}
    assert clean == ["Testing/meningioma/clean.png"]
    assert set(train_ok) == TRAIN_ONLY
    assert leaking == result.test_leaking and not any(p.startswith("/") for p in leaking + clean + train_ok)
    train_bad = (out / "train_leaking.txt").read_text().splitlines()
    assert train_bad and not set(train_bad) & set(train_ok)  # the complement, for `train --exclude`
    assert all(p.startswith("Training/") for p in train_bad)


def test_unreadable_file_is_reported_not_fatal(audited) -> None:
    result, out = audited
    report = json.loads((out / "audit.json").read_text())
    assert [u["path"] for u in report["unreadable"]] == ["Testing/glioma/broken.jpg"]
    assert "unreadable files (skipped, listed in audit.json): 1" in result.summary()


def test_label_conflict_found(audited) -> None:
    result, _ = audited
    pairs = {(c["a"], c["b"]) for c in result.label_conflicts}
    assert pairs == {("Testing/glioma/conflict.jpg", "Training/pituitary/p2.jpg")}


def test_within_split_groups_and_counts(audited) -> None:
    result, out = audited
    assert result.within["train"]["duplicate_groups"] == 1  # g1.jpg and g1_dup.jpg
    assert result.within["train"]["pairs_per_kind"]["exact"] == 1
    # contrast.jpg and mirror_h.jpg are both made from n1.jpg, so they are mirrors of each other (near).
    assert result.within["test"]["duplicate_groups"] == 1 and result.within["test"]["images_in_groups"] == 2
    report = json.loads((out / "audit.json").read_text())
    assert report["cross_split"]["test_images_per_kind"] == {
        "exact": 2,
        "copy": 4,
        "mirror": 2,
        "near": 2,
        "any": 10,
    }
    assert report["thresholds"]["near_corr"] == Thresholds().near_corr


def test_groups_csv_links_duplicates_and_is_readable_by_the_splitter(audited, planted: Path) -> None:
    _, out = audited
    with open(out / "groups.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "group"]
    group = dict(rows[1:])
    files = {p.relative_to(planted).as_posix() for p in planted.rglob("*.*")}
    assert set(group) == files  # every image once, the unreadable one included
    assert group["Testing/glioma/exact.jpg"] == group["Training/glioma/g1.jpg"] == group["Training/glioma/g1_dup.jpg"]
    assert group["Testing/glioma/conflict.jpg"] == group["Training/pituitary/p2.jpg"]
    assert list(group.values()).count(group["Testing/meningioma/clean.png"]) == 1
    from braintumor.data.splits import load_groups_csv

    assert len(load_groups_csv(out / "groups.csv", planted)) == len(files)


def test_example_pictures_written(audited) -> None:
    _, out = audited
    for kind in ("exact", "copy", "mirror", "near", "borderline"):
        with Image.open(out / f"examples_{kind}.png") as im:
            assert im.width > 400 and im.height > 200


def test_against_other_dataset(planted: Path, tmp_path: Path) -> None:
    result = run_audit(planted / "Testing", against=planted / "Training", out_dir=tmp_path, examples=0, progress=False)
    leaking = (tmp_path / "test_leaking.txt").read_text().splitlines()
    assert set(leaking) == {p.removeprefix("Testing/") for p, k in EXPECTED.items() if k}
    assert set((tmp_path / "train_minus_leaks.txt").read_text().splitlines()) == {
        p.removeprefix("Training/") for p in TRAIN_ONLY
    }
    with open(tmp_path / "groups.csv", newline="") as f:
        assert all(not row[0].startswith("Training") for row in csv.reader(f))  # DATA rows only
    assert result.test_leaks["mirror"] == 2 and not list(tmp_path.glob("*.png"))


def test_cli_audit(planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "audit", str(planted), "--out", str(tmp_path), "--quiet", "--examples", "1"]) == 0
    printed = capsys.readouterr().out
    assert "clean test images: 1 of 11" in printed and "label conflicts" in printed
    assert (tmp_path / "audit.json").is_file() and (tmp_path / "test_clean.txt").is_file()


@pytest.mark.parametrize("args", [["--threshold", "1.5"], ["--threshold", "0"]])
def test_cli_rejects_bad_threshold(planted: Path, tmp_path: Path, capsys, args: list[str]) -> None:
    assert main(["data", "audit", str(planted), "--out", str(tmp_path), "--quiet", *args]) == 2
    assert "threshold" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--neighbours", "--zoom-neighbours"])
def test_cli_rejects_bad_neighbour_counts(planted: Path, tmp_path: Path, capsys, flag: str) -> None:
    assert main(["data", "audit", str(planted), "--out", str(tmp_path), "--quiet", flag, "65"]) == 2
    assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err


def test_test_split_without_train_is_an_error(planted: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "only_test"
    shutil.copytree(planted / "Testing", root / "Testing")
    assert main(["data", "audit", str(root), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "--against" in capsys.readouterr().err


def test_audit_without_test_split_reports_within_split_only(planted: Path, tmp_path: Path) -> None:
    result = run_audit(planted / "Training", out_dir=tmp_path, examples=0, progress=False)
    assert not result.has_test and result.within["all"]["duplicate_groups"] == 1
    assert not (tmp_path / "test_leaking.txt").exists() and (tmp_path / "groups.csv").is_file()
    assert "no test split" in result.summary()


def test_real_small_dataset_within_folder_duplicates(shared_data: Path) -> None:
    result = run_audit(shared_data / "chakrabarty-253", progress=False)
    within = result.within["all"]
    assert within["images"] == 253 and within["pairs_per_kind"]["exact"] >= 20
    assert within["duplicate_groups"] >= 20 and not result.unreadable


@pytest.mark.slow
def test_real_nickparvar_split_leaks(shared_data: Path, tmp_path: Path) -> None:
    result = run_audit(shared_data / "nickparvar-7023", out_dir=tmp_path, examples=0, progress=False)
    assert result.images == {"test": 1311, "train": 5712}
    assert len(result.test_leaking) + len(result.test_clean) == 1311
    assert result.test_leaks["exact"] == 216  # identical files or pixels: no threshold involved
    assert 0.7 < result.test_leaks["any"] / 1311 < 0.9
    mirror = {(p["a"], p["b"]): p["kind"] for p in result.pairs}
    assert mirror[("Testing/glioma/Te-gl_0015.jpg", "Training/glioma/Tr-gl_0327.jpg")] == "mirror"
    # A re-framed mirror image that only the registered second look finds.
    aligned = {(p["a"], p["b"]): p for p in result.pairs if p.get("aligned")}
    assert aligned[("Testing/meningioma/Te-me_0262.jpg", "Training/meningioma/Tr-me_0716.jpg")]["kind"] == "mirror"
    # Re-framed copies with a white border, found through a zoomed view.
    assert ("Testing/meningioma/Te-me_0061.jpg", "Training/meningioma/Tr-me_0240.jpg") in aligned
    assert ("Testing/meningioma/Te-me_0014.jpg", "Training/meningioma/Tr-me_0181.jpg") in aligned
    conflicts = {(c["a"], c["b"]) for c in result.label_conflicts}
    assert ("Testing/meningioma/Te-me_0156.jpg", "Testing/pituitary/Te-piTr_0002.jpg") in conflicts


def test_val_split_is_audited_against_train_and_test(planted: Path, tmp_path: Path) -> None:
    root = tmp_path / "tvt"
    shutil.copytree(planted / "Training", root / "train")
    shutil.copytree(planted / "Testing", root / "test")
    (root / "val/pituitary").mkdir(parents=True)
    shutil.copy(planted / "Training/pituitary/p1.jpg", root / "val/pituitary/p1_again.jpg")
    result = run_audit(root, examples=0, progress=False)
    assert result.val_leaks["exact"] == 1 and result.val_leaks["any"] == 1
    near_val = [p for p in result.pairs if p["a"] == "test/pituitary/adjacent.jpg" and p["split_b"] == "val"]
    assert [p["kind"] for p in near_val] == ["near"]  # test is audited against val as well as train
    assert "val images with a duplicate in train: 1" in result.summary()


def test_all_files_unreadable_is_reported_not_fatal(tmp_path: Path) -> None:
    for split in ("Training", "Testing"):
        (tmp_path / split / "a").mkdir(parents=True)
        (tmp_path / split / "a" / "x.jpg").write_text("not an image")
    result = run_audit(tmp_path, out_dir=tmp_path / "out", examples=1, progress=False)
    assert result.images == {"test": 0, "train": 0} and len(result.unreadable) == 2
    assert (tmp_path / "out" / "test_clean.txt").read_text() == ""
    assert "Testing/a/x.jpg: " in result.summary()
