"""Localisation scoring on tiny synthetic maps and boxes whose figures can be checked by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.explain import (
    Explainer,
    TumorBox,
    bootstrap_ci,
    format_table,
    localization_report,
    normal_classes,
    read_boxes,
    scan_scores,
)
from braintumor.explain.localization import energy_share, pointing_hit
from braintumor.models import load_model

BOX = TumorBox("a.png", "glioma", 2, 2, 5, 5)  # 4 x 4 pixels (columns and rows 2..5, ends included)


def test_pointing_hit_and_tolerance() -> None:
    cam = np.zeros((10, 10), np.float32)
    cam[4, 3] = 1.0  # peak at x=3, y=4: inside
    assert pointing_hit(cam, BOX, tolerance=0)
    cam[4, 3], cam[4, 7] = 0.0, 1.0  # x=7: two pixels right of x_max=5
    assert not pointing_hit(cam, BOX, tolerance=1)
    assert pointing_hit(cam, BOX, tolerance=2)
    assert not pointing_hit(np.zeros((10, 10), np.float32), BOX, tolerance=100)  # empty map: a miss


def test_energy_share() -> None:
    cam = np.zeros((10, 10), np.float32)
    cam[2:6, 2:6] = 1.0  # 16 pixels inside
    cam[0, :4] = 1.0  # 4 outside
    assert energy_share(cam, BOX) == pytest.approx(16 / 20)
    assert energy_share(np.zeros((10, 10), np.float32), BOX) == 0.0


def test_scan_scores_and_baselines_by_hand() -> None:
    cam = np.zeros((10, 10), np.float32)
    cam[3, 3] = 1.0
    s = scan_scores(cam, BOX, tolerance=1)
    assert s["model_hit"] == 1.0 and s["model_energy"] == 1.0
    assert s["uniform_energy"] == pytest.approx(16 / 100)  # box area / image area
    assert s["uniform_hit"] == pytest.approx(36 / 100)  # grown box (1..6 squared) / image area
    assert s["centre_hit"] == 1.0  # image centre (4.5, 4.5) is in the box
    assert 16 / 100 < s["centre_energy"] < 1  # a centred Gaussian puts more than the uniform share there
    corner = scan_scores(cam, TumorBox("b", "x", 0, 0, 1, 1), tolerance=1)
    assert corner["centre_hit"] == 0.0 and corner["model_hit"] == 0.0
    assert corner["centre_energy"] < corner["uniform_energy"] == pytest.approx(4 / 100)


def test_bootstrap_ci() -> None:
    assert bootstrap_ci([1.0]) is None
    assert bootstrap_ci([0.3] * 5) == (0.3, 0.3)
    values = [0.0, 1.0] * 50
    lo, hi = bootstrap_ci(values)
    assert 0.35 < lo < 0.5 < hi < 0.65
    assert bootstrap_ci(values) == (lo, hi)  # seeded: the same figures every run


def test_read_boxes_errors_name_the_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("image,label,x_min,y_min,x_max,y_max\nglioma/1.jpg,glioma,1.5,2,30,40.25\n")
    assert read_boxes(good) == [TumorBox("glioma/1.jpg", "glioma", 1.5, 2, 30, 40.25)]
    cases = {
        "image,label,x_min,y_min,x_max\na,b,1,2,3\n": "missing column",
        "image,label,x_min,y_min,x_max,y_max\na,b,1,2,3,oops\n": "line 2",
        "image,label,x_min,y_min,x_max,y_max\na,b,1,2,3,4\nc,d,9,2,3,4\n": "line 3.*x_min > x_max",
        "image,label,x_min,y_min,x_max,y_max\n": "no boxes",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"bad{i}.csv.*{message}"):
            read_boxes(bad)
    with pytest.raises(FileNotFoundError):
        read_boxes(tmp_path / "missing.csv")


def test_normal_classes() -> None:
    assert normal_classes(["glioma", "no_tumor", "pituitary"]) == ["no_tumor"]
    assert normal_classes(["yes", "no"]) == ["no"]
    assert normal_classes(["glioma", "meningioma"]) == []
    assert normal_classes(["glioma", "healthy"], ["Healthy"]) == ["healthy"]
    with pytest.raises(ValueError, match=r"notumour.*not a class"):
        normal_classes(["glioma", "notumor"], ["notumour"])


@dataclass
class _FakeExplanation:
    cam: np.ndarray
    predicted_label: str

    @property
    def peak(self):
        if not self.cam.any():
            return None
        y, x = np.unravel_index(int(np.argmax(self.cam)), self.cam.shape)
        return int(x), int(y)


class _FakeExplainer:
    """Returns a chosen map per scan: the scan's brightest pixel is the peak, dim scans predicted notumor."""

    def __init__(self) -> None:
        self.class_names = ["glioma", "notumor"]
        self.method = "gradcam"
        self.layer_name = "features.3"
        self.loaded = type("Loaded", (), {"arch": "fake"})()

    def explain(self, scan):
        px = scan.as_uint8().astype(np.float32)
        return _FakeExplanation(px / px.max() if px.max() else px, "notumor" if px.max() < 50 else "glioma")


def _write(folder: Path, name: str, img: np.ndarray) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / name)


def test_report_figures_by_hand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i, (x, y) in enumerate([(12, 12), (16, 8), (32, 32), (0, 39)]):  # peaks: in, in, out, out of the box
        img = np.zeros((40, 40), np.uint8)  # the reader needs 32 px a side
        img[y, x] = 255
        _write(data, f"glioma/{i}.png", img)
    _write(data, "glioma/dim.png", np.full((40, 40), 20, np.uint8))  # predicted notumor: not scored
    rows = "".join(f"glioma/{i}.png,glioma,8,8,23,23\n" for i in range(4))  # 16 x 16 px
    csv = tmp_path / "boxes.csv"
    csv.write_text(
        "image,label,x_min,y_min,x_max,y_max\n" + rows + "glioma/dim.png,glioma,8,8,23,23\nglioma/gone.png,g,1,1,2,2\n"
    )
    report = localization_report(_FakeExplainer(), data, csv, tolerance=0, progress=False)
    assert (report["n_boxes"], report["n_scored"], report["n_called_normal"], report["n_errors"]) == (6, 4, 1, 1)
    assert "gone.png" in report["errors"][0]["error"] and "not found" in report["errors"][0]["error"]
    assert report["normal_classes"] == ["notumor"]
    pg, en = report["pointing_game"], report["energy_inside_box"]
    assert pg["model"]["mean"] == 0.5  # 2 of 4 peaks inside
    assert en["model"]["mean"] == 0.5  # single-pixel maps: energy share = hit
    assert pg["uniform"]["mean"] == en["uniform"]["mean"] == pytest.approx(256 / 1600)
    assert pg["centre"]["mean"] == 1.0  # centre (19.5, 19.5) is in the box
    lo, hi = pg["model"]["ci95"]
    assert 0 <= lo < 0.5 < hi <= 1
    assert report["per_label"] == {"glioma": {"n": 4, "hit_rate": 0.5, "energy_share": 0.5}}
    table = format_table(report)
    assert "pointing-game hit rate" in table and "0.500" in table and "0.160" in table


def test_report_with_a_real_model_scores_baselines_and_skips_normal_calls(tmp_path, biased_checkpoint, make_head_scan):
    data = tmp_path / "data"
    _write(data, "a.png", make_head_scan())  # 200 x 300
    _write(data, "b.png", make_head_scan(120, 160, centre=(80, 60), axes=(60, 45)))
    csv = tmp_path / "boxes.csv"
    csv.write_text("image,label,x_min,y_min,x_max,y_max\na.png,glioma,0,0,29,19\nb.png,glioma,70,50,89,69\n")
    explainer = Explainer(load_model(biased_checkpoint("glioma")))
    report = localization_report(explainer, data, csv, progress=False, tolerance=0)
    assert report["n_scored"] == 2 and report["normal_classes"] == ["notumor"]
    assert report["energy_inside_box"]["uniform"]["mean"] == pytest.approx((600 / 60000 + 400 / 19200) / 2)
    assert report["pointing_game"]["centre"]["mean"] == 0.5  # b's box holds its centre (79.5, 59.5); a's does not
    assert {s["predicted"] for s in report["scans"]} == {"glioma"}
    skipped = localization_report(explainer, data, csv, normal=["glioma"], progress=False)
    assert skipped["n_scored"] == 0 and skipped["n_called_normal"] == 2
    assert skipped["pointing_game"]["model"] == {"mean": None, "ci95": None}
