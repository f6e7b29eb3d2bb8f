"""Leakage audit: a synthetic dataset with one planted duplicate of each kind, plus the real data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from braintumor.cli import main
from braintumor.data.audit import run_audit
from braintumor.data.audit_align import align_scores, register_pair
from braintumor.data.audit_features import FEATURE_SIDE, Fingerprints, head_crop
from braintumor.data.audit_match import FLIPS, Thresholds, candidate_pairs, nearest_pairs
from braintumor.data.audit_scores import ssim_batch

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


def _phantom(seed: int, size: int = 256) -> np.ndarray:
    """A synthetic head: an ellipse of smooth random texture with a few bright blobs, unlike any other seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    ry, rx = rng.uniform(0.34, 0.46) * size, rng.uniform(0.26, 0.4) * size
    head = ((yy - size / 2) / ry) ** 2 + ((xx - size / 2) / rx) ** 2 <= 1
    tex = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), rng.uniform(2, 5))
    img = np.where(head, 40 + 180 * (tex - tex.min()) / (tex.max() - tex.min()), 0)
    for _ in range(5):
        (y, x), r = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.03, 0.08) * size
        img[((yy - y) ** 2 + (xx - x) ** 2 <= r * r) & head] = rng.uniform(160, 255)
    return img.astype(np.uint8)


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _save(path: Path, pixels: np.ndarray, mode: str = "L", **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, **kw)


def _adjacent_slice(img: np.ndarray) -> np.ndarray:
    """A stand-in for the next slice of the same scan: slightly scaled and turned anatomy, 20 % darker."""
    h, w = img.shape
    warp = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.04)
    moved = cv2.warpAffine(img, warp, (w, h), flags=cv2.INTER_LINEAR)
    return (moved.astype(np.float32) * 0.8).astype(np.uint8)


def _build(root: Path, samples: Path) -> None:
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
    _save(tr / "meningioma/m2_gray.jpg", _gray(s["Te-me_0142"]), quality=95)
    _save(tr / "pituitary/phantom_a.png", _phantom(1))
    _save(tr / "notumor/phantom_b.png", _phantom(2))
    _save(tr / "glioma/phantom_c.png", _phantom(4))

    (te / "glioma").mkdir(parents=True)
    shutil.copy(s["Te-gl_0013"], te / "glioma/exact.jpg")
    _save(te / "glioma/reencoded.jpg", _gray(s["Te-gl_0026"]), quality=40)
    m1 = _gray(s["Te-me_0115"])
    _save(te / "meningioma/resized.png", cv2.resize(m1, (300, 300), interpolation=cv2.INTER_AREA))
    _save(te / "meningioma/rgb.jpg", _gray(tr / "meningioma/m2_gray.jpg"), mode="RGB", quality=85)
    _save(te / "notumor/mirror_h.jpg", _gray(s["Te-no_0010"])[:, ::-1].copy(), quality=90)
    _save(te / "notumor/mirror_v.jpg", _gray(s["Te-no_0224"])[::-1].copy(), quality=90)
    _save(te / "pituitary/adjacent.jpg", _adjacent_slice(_gray(s["Te-pi_0013"])), quality=90)
    gamma = (255 * (_gray(s["Te-no_0010"]) / 255.0) ** 1.3).astype(np.uint8)  # same picture, other contrast
    _save(te / "notumor/contrast.jpg", gamma, quality=90)
    _save(te / "glioma/conflict.jpg", _gray(s["Te-pi_0039"]), quality=80)  # a pituitary scan filed as glioma
    _save(te / "pituitary/phantom_rgb.png", _phantom(1), mode="RGB")  # same pixels as phantom_a.png
    _save(te / "meningioma/clean.png", _phantom(3))
    (te / "glioma/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("planted")
    _build(root, samples_dir)
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


def test_ssim_batch_matches_skimage() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((6, 64, 64)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1).astype(np.float32)
    expected = [structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ssim_batch(a, b), expected, atol=1e-5)


def test_candidate_search_matches_brute_force_in_all_orientations() -> None:
    rng = np.random.default_rng(1)
    base = np.stack([cv2.resize(_phantom(s), (64, 64), interpolation=cv2.INTER_AREA) for s in range(8)])
    crops = np.concatenate([base, base[:3, :, ::-1], base[3:5, ::-1, :]])  # plus h- and v-mirrors
    crops = np.clip(crops + rng.integers(0, 3, crops.shape), 0, 255).astype(np.uint8)
    fp = Fingerprints(paths=[], index=np.arange(len(crops)), sha1=[], crops=crops, unreadable=[])
    i, j, corr, flip = candidate_pairs(fp.features(), FEATURE_SIDE, gate=-1.0)
    views = [fp.features(f or None) for f in FLIPS]
    brute = np.stack([v @ views[0].T for v in views])
    np.testing.assert_allclose(corr, brute.max(0)[i, j], atol=1e-5)
    np.testing.assert_array_equal(flip, brute.argmax(0)[i, j])
    found = {(int(a), int(b)): FLIPS[f] for a, b, c, f in zip(i, j, corr, flip, strict=True) if c > 0.99}
    assert found == {(0, 8): "h", (1, 9): "h", (2, 10): "h", (3, 11): "v", (4, 12): "v"}


def test_head_crop_ignores_padding() -> None:
    img = _phantom(5)
    padded = cv2.copyMakeBorder(img, 40, 10, 70, 0, cv2.BORDER_CONSTANT, value=0)
    a, b = head_crop(img).astype(float), head_crop(padded).astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


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


def _copies_of_samples(samples_dir: Path, root: Path, edits: dict) -> list[str]:
    """Training: the shipped samples; Testing: one edited copy of each per edit, named STEM_KEY (KEY ends
    with the file type; each edit maps the grayscale pixels to a PIL image). Returns the copies' paths."""
    made = []
    for src in sorted(samples_dir.glob("*/*.jpg")):
        cls, gray = src.parent.name, np.asarray(Image.open(src).convert("L"))
        (root / "Training" / cls).mkdir(parents=True, exist_ok=True)
        (root / "Testing" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / "Training" / cls / src.name)
        for key, edit in edits.items():
            name = f"{src.stem}_{key}"
            edit(gray).save(root / "Testing" / cls / name, **({"quality": 95} if key.endswith("jpg") else {}))
            made.append(f"Testing/{cls}/{name}")
    return made


def _bigger(f: float):
    def bigger(g: np.ndarray) -> Image.Image:
        return Image.fromarray(g).resize((int(g.shape[1] * f), int(g.shape[0] * f)), Image.Resampling.LANCZOS)

    return bigger


def test_brightened_resized_and_16_bit_copies_are_found(samples_dir: Path, tmp_path: Path) -> None:
    # The head used to be located with a fixed threshold at the decoded size: a copy brightened by 10 grey
    # levels got another box and passed as a new scan (76 of 120 in a review), as did some resized copies.
    edits = {
        "bright10.jpg": lambda g: Image.fromarray(np.clip(g.astype(int) + 10, 0, 255).astype(np.uint8)),
        "big17.jpg": _bigger(1.7),
        "png16.png": lambda g: Image.fromarray(g.astype(np.uint16) * 257),
    }
    made = _copies_of_samples(samples_dir, tmp_path / "data", edits)
    result = run_audit(tmp_path / "data", out_dir=None, examples=0, progress=False)
    missed = sorted(set(made) - set(result.test_leaking))
    assert missed == [], missed


def _crop(f: float):
    def crop(g: np.ndarray) -> Image.Image:
        dy, dx = round(f * g.shape[0]), round(f * g.shape[1])
        return Image.fromarray(np.ascontiguousarray(g[dy : g.shape[0] - dy, dx : g.shape[1] - dx]))

    return crop


def _rotate(deg: float):
    def rotate(g: np.ndarray) -> Image.Image:
        h, w = g.shape
        return Image.fromarray(cv2.warpAffine(g, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h)))

    return rotate


def test_cropped_and_rotated_copies_are_found_by_the_second_look(samples_dir: Path, tmp_path: Path) -> None:
    # A crop that cuts into the head, or a rotation, changes the head's box: the plain comparison missed
    # 80 of 120 copies cropped by 5 % per side and 76 of 120 rotated by 5 degrees (benchmarks/audit_recall.py).
    made = _copies_of_samples(samples_dir, tmp_path, {"crop5.png": _crop(0.05), "rot5.png": _rotate(5.0)})
    result = run_audit(tmp_path, examples=0, progress=False)
    assert sorted(set(made) - set(result.test_leaking)) == []
    scan = {Path(m).stem: Path(m).stem.rsplit("_", 1)[0] for m in made}
    for p in result.pairs:
        # Only copies of one scan are paired: the 8 samples are 8 different patients.
        a, b = (Path(p[k]).stem for k in ("a", "b"))
        assert scan.get(a, a) == scan.get(b, b), p
    aligned = [p for p in result.pairs if p.get("aligned")]
    assert aligned and all(
        p["ssim"] >= result.thresholds.aligned_ssim - 1e-9 or p["ssim_blur"] >= 0.88 for p in aligned
    )
    assert "second look: each image's 8 nearest partners" in result.summary()

    plain = run_audit(tmp_path, examples=0, progress=False, neighbours=0)
    assert not any(p.get("aligned") for p in plain.pairs)
    assert len(plain.test_leaking) < len(made)  # what the second look adds


def test_zoomed_views_find_copies_cropped_into_the_head(samples_dir: Path, tmp_path: Path) -> None:
    # A copy cropped by 12 % per side is often not its original's nearest partner as it is; the nearest
    # partner of a zoomed view of the original is the copy. One partner each, so the views must do the work.
    made = _copies_of_samples(samples_dir, tmp_path, {"crop12.png": _crop(0.12)})
    result = run_audit(tmp_path, examples=0, progress=False, neighbours=1, zoom_neighbours=1)
    assert sorted(set(made) - set(result.test_leaking)) == []
    assert "(and 1 of each zoomed view)" in result.summary()
    plain = run_audit(tmp_path, examples=0, progress=False, neighbours=1, zoom_neighbours=0)
    assert len(plain.test_leaking) < len(made)


def test_nearest_pairs_matches_brute_force_in_all_orientations() -> None:
    rng = np.random.default_rng(3)
    side, n, k = 8, 40, 3
    x = rng.standard_normal((n, side * side)).astype(np.float32)
    x[5] = 0  # a blank frame: no partners
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    feats = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    i, j, corr, flip = nearest_pairs(feats, side, k)
    imgs = feats.reshape(n, side, side)
    views = [imgs, imgs[:, :, ::-1], imgs[:, ::-1, :]]  # FLIPS order
    sims = np.stack([np.einsum("ahw,bhw->ab", v, imgs) for v in views])  # sims[f, a, b]: a mirrored by f vs b
    best = sims.max(0)
    np.fill_diagonal(best, -np.inf)
    best[:, 5] = -np.inf
    expected = set()
    for a in range(n):
        if a == 5:
            continue
        for b in np.argsort(-best[a])[:k]:
            if best[a, b] >= 0.3:
                expected.add((min(a, b), max(a, b)))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    for a, b, c, f in zip(i, j, corr, flip, strict=True):
        assert c == pytest.approx(best[a, b], abs=1e-5) and sims[f, a, b] == pytest.approx(c, abs=1e-5)
    assert np.all(i < j)


def test_nearest_pairs_of_a_query_view_match_brute_force() -> None:
    # With `query` (a zoomed view of the same images), partners are the columns that best match each query row.
    rng = np.random.default_rng(4)
    side, n, k = 4, 30, 2
    feats, query = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in rng.standard_normal((2, n, side * side)))
    feats, query = feats.astype(np.float32), query.astype(np.float32)
    i, j, corr, flip = nearest_pairs(feats, side, k, query=query)
    q, f = query.reshape(n, side, side), feats.reshape(n, side, side)
    sims = np.stack([np.einsum("ahw,bhw->ab", v, f) for v in (q, q[:, :, ::-1], q[:, ::-1, :])])
    best = sims.max(0)
    np.fill_diagonal(best, -np.inf)
    listed: dict[tuple[int, int], tuple[float, int]] = {}
    for a in range(n):
        for b in np.argsort(-best[a])[:k]:
            key = (min(a, b), max(a, b))
            # Listed from both ends, the pair keeps the end with the higher correlation, and its orientation.
            if best[a, b] >= 0.3 and best[a, b] > listed.get(key, (-np.inf, 0))[0]:
                listed[key] = (best[a, b], int(np.argmax(sims[:, a, b])))
    assert len(listed) > n // 2 and set(zip(i.tolist(), j.tolist(), strict=True)) == set(listed)
    top = {(a, int(b)) for a in range(n) for b in np.argsort(-best[a])[:k] if best[a, b] >= 0.3}
    # Some pairs are listed from both ends, and the higher end is the second one (the higher image's row).
    assert any((a, b) in top and (b, a) in top and best[b, a] > best[a, b] for a, b in listed)
    for a, b, c, fl in zip(i.tolist(), j.tolist(), corr, flip, strict=True):
        assert c == pytest.approx(listed[a, b][0], abs=1e-5) and fl == listed[a, b][1]


def test_pair_corrs_match_mirrored_dot_products() -> None:
    from braintumor.data.audit_match import _pair_corrs

    rng = np.random.default_rng(5)
    n, side = 12, FEATURE_SIDE
    feats = rng.standard_normal((n, side * side)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    i, j, flip = rng.integers(0, n, 40), rng.integers(0, n, 40), rng.integers(0, 3, 40)
    imgs = feats.reshape(n, side, side)
    views = [imgs, imgs[:, :, ::-1], imgs[:, ::-1, :]]  # FLIPS order
    oriented, plain = _pair_corrs(feats, i, j, flip, chunk=16)
    np.testing.assert_allclose(
        oriented, [np.sum(views[f][a] * imgs[b]) for a, b, f in zip(i, j, flip, strict=True)], atol=1e-5
    )
    np.testing.assert_allclose(plain, [np.sum(imgs[a] * imgs[b]) for a, b in zip(i, j, strict=True)], atol=1e-5)


def test_register_pair_refuses_folding_and_scores_a_crop_as_a_copy(samples_dir: Path) -> None:
    gray = np.asarray(Image.open(next(samples_dir.glob("glioma/*.jpg"))).convert("L"))
    a, b = head_crop(gray), head_crop(np.asarray(_crop(0.06)(gray)))
    moved, target, covered = register_pair(a, b)
    assert covered.mean() > 0.9
    assert ssim_batch(moved[None] / 255.0, target[None] / 255.0)[0] > 0.9
    assert register_pair(a, np.zeros_like(a)) is None  # nothing to fit


def test_register_pair_starts_from_a_zoom_when_the_identity_fails(samples_dir: Path) -> None:
    # This head fills the frame top to bottom, so a 12 % crop is a 1.3x zoom of its head crop: the fit from
    # the identity does not converge to an acceptable warp, the one started from scale 0.8 does.
    gray = np.asarray(Image.open(samples_dir / "notumor" / "Te-no_0010.jpg").convert("L"))
    a, b = head_crop(gray), head_crop(np.asarray(_crop(0.12)(gray)))
    th = Thresholds()
    for first, second in ((a, b), (b, a)):
        al = align_scores(np.stack([first, second]), np.array([0]), np.array([1]), np.array([0]), 32, 1.5, workers=1)
        assert al.ok[0] and (al.ssim[0] >= th.aligned_ssim or al.ssim_blur[0] >= th.aligned_ssim_blur)


def test_second_look_keeps_the_try_that_passes_and_reports_its_orientation(samples_dir: Path, monkeypatch) -> None:
    # A pair that correlates best mirrored is also registered as it is; the try that reaches a kind wins over
    # one with a slightly higher sharp SSIM that reaches none, and the pair reports that try's orientation.
    from braintumor.data import audit_match
    from braintumor.data.audit_align import Aligned

    paths = sorted(samples_dir.glob("glioma/*.jpg"))
    crops = np.stack([head_crop(_gray(p)) for p in paths])
    fp = Fingerprints(paths, np.arange(2), ["a", "b"], crops, [])
    plain = float(fp.features()[0] @ fp.features()[1])
    monkeypatch.setattr(
        audit_match,
        "nearest_pairs",
        lambda *a, **kw: (np.array([0]), np.array([1]), np.array([plain + 0.05], np.float32), np.array([1])),
    )
    tried = []

    def fake_align(crops, i, j, flip, *args):
        tried.append(sorted(flip.tolist()))
        # mirrored try: sharp 0.745 (higher), blurred 0.85 (fails); plain try: 0.74, blurred 0.90 (passes)
        mirrored = flip != 0
        return Aligned(
            np.ones(len(flip), bool),
            np.where(mirrored, 0.745, 0.74),
            np.where(mirrored, 0.85, 0.90),
            np.full(len(flip), 20.0),
        )

    monkeypatch.setattr(audit_match, "align_scores", fake_align)
    pairs = audit_match.classify(fp, Thresholds(near_corr=0.99))
    assert tried == [[0, 1]]
    hit = pairs.select(pairs.aligned)
    assert hit.kind.tolist() == ["near"] and hit.flip.tolist() == [0]
    assert hit.corr[0] == pytest.approx(plain, abs=1e-5)  # the correlation of the orientation reported
