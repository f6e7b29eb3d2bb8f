"""`braintumor explain`: overlay PNGs per input, and localisation scoring with --boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.cli import main
from braintumor.models import model_info


def _inputs(samples_dir: Path, tmp_path: Path, make_head_scan) -> list[Path]:
    head = tmp_path / "in" / "wide_head.png"
    head.parent.mkdir()
    Image.fromarray(make_head_scan()).save(head)  # 300 x 200, off-centre head: cropped, padded, resized
    return [*sorted(samples_dir.glob("glioma/*.jpg")), head]


def test_writes_one_png_per_input_at_the_scan_size(tiny_checkpoint, samples_dir, tmp_path, make_head_scan, capsys):
    inputs = _inputs(samples_dir, tmp_path, make_head_scan)
    out = tmp_path / "out"
    rc = main(["explain", "--model", str(tiny_checkpoint), *map(str, inputs), "--out", str(out)])
    assert rc == 0
    for f in inputs:
        png = out / f"{f.stem}.png"
        assert png.is_file(), png
        assert Image.open(png).size == Image.open(f).size
    assert capsys.readouterr().out.count("predicted") == len(inputs)


def test_method_target_and_colorbar(tiny_checkpoint, samples_dir, tmp_path, make_head_scan, capsys) -> None:
    head = _inputs(samples_dir, tmp_path, make_head_scan)[-1]
    args = ["explain", "--model", str(tiny_checkpoint), str(head), "--method", "gradcam++", "--target", "notumor"]
    assert main([*args, "--colorbar", "--out", str(tmp_path / "o")]) == 0
    w, h = Image.open(tmp_path / "o" / "wide_head.png").size
    assert h == 200 and w > 300
    assert "map of notumor" in capsys.readouterr().out


def test_layer_option_hooks_another_layer_and_a_wrong_one_is_a_message(
    tiny_checkpoint, samples_dir, tmp_path, capsys
) -> None:
    scan = str(next(samples_dir.glob("glioma/*.jpg")))
    model = ["--model", str(tiny_checkpoint)]
    assert main(["explain", *model, scan, "--layer", "features.2", "--out", str(tmp_path / "a")]) == 0
    assert main(["explain", *model, scan, "--out", str(tmp_path / "b")]) == 0
    stem = Path(scan).stem
    a, b = (np.asarray(Image.open(tmp_path / d / f"{stem}.png")) for d in "ab")
    assert a.shape == b.shape and not np.array_equal(a, b)  # another layer, another map
    capsys.readouterr()
    assert main(["explain", *model, scan, "--layer", "blocks.99", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "has no layer 'blocks.99'" in err and "Traceback" not in err


def test_folder_input_and_an_unreadable_file(tiny_checkpoint, samples_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "scans"
    shutil.copytree(samples_dir / "pituitary", folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    rc = main(["explain", "--model", str(tiny_checkpoint), str(folder), "--out", str(tmp_path / "o")])
    assert rc == 1  # something failed, and the user is told what
    assert "broken.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["Te-pi_0013.png", "Te-pi_0039.png"]


def test_images_the_predictor_refuses_get_no_overlay(tiny_checkpoint, samples_dir, tmp_path, capsys) -> None:
    # as in `predict` and the web service: no map for what is not a brain MRI (here a blank image)
    folder = tmp_path / "scans"
    shutil.copytree(samples_dir / "glioma", folder)
    Image.new("L", (128, 128), 90).save(folder / "blank.png")
    rc = main(["explain", "--model", str(tiny_checkpoint), str(folder), "--out", str(tmp_path / "o")])
    assert rc == 0  # a refusal is an answer, not a failure
    err = capsys.readouterr().err
    assert "REFUSED" in err and "blank.png" in err and "blank" in err and "no overlay written" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["Te-gl_0013.png", "Te-gl_0026.png"]


def test_user_mistakes_are_messages_not_tracebacks(tiny_checkpoint, samples_dir, tmp_path, capsys) -> None:
    scan = str(next(samples_dir.glob("glioma/*.jpg")))
    model = ["--model", str(tiny_checkpoint)]
    assert main(["explain", *model, scan]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["explain", *model, scan, "--target", "astrocytoma", "--out", str(tmp_path)]) == 2
    assert "glioma, meningioma, notumor, pituitary" in capsys.readouterr().err
    assert main(["explain", "--model", str(tmp_path / "nope"), scan, "--out", str(tmp_path)]) == 2
    assert "model not found" in capsys.readouterr().err


def test_boxes_mode_writes_localization_json_and_prints_a_table(biased_checkpoint, tmp_path, make_head_scan, capsys):
    data = tmp_path / "data" / "glioma"
    data.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.roll(make_head_scan(), 10 * i, axis=1)).save(data / f"{i}.png")
    csv = tmp_path / "boxes.csv"
    rows = "".join(f"glioma/{i}.png,glioma,{180 + 10 * i},60,{210 + 10 * i},90\n" for i in range(3))
    csv.write_text("image,label,x_min,y_min,x_max,y_max\n" + rows)
    model = str(biased_checkpoint("meningioma"))
    out = tmp_path / "loc"
    args = ["explain", "--model", model, str(tmp_path / "data"), "--boxes", str(csv), "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pointing-game hit rate" in printed and "CAM energy in box" in printed
    report = json.loads((out / "localization.json").read_text())
    assert report["n_scored"] == 3 and report["model"] == model
    assert report["method"] == "layercam" and report["layer"] == model_info("simple_cnn").gradcam_layer
    assert set(report["pointing_game"]) == {"model", "uniform", "centre"}
    assert report["energy_inside_box"]["uniform"]["mean"] == pytest.approx(31 * 31 / 60000)
    assert main([*args, "--normal-class", "meningioma"]) == 0
    assert "0 scans called tumour scored" in capsys.readouterr().out
    assert main([*args, "--normal-class", "notumour"]) == 2
    assert "not a class of the model" in capsys.readouterr().err


def test_explain_reports_and_maps_the_answer_predict_gives(tiny_checkpoint, samples_dir, tmp_path, capsys) -> None:
    model = ["--model", str(tiny_checkpoint)]
    assert main(["predict", str(samples_dir), *model, "--format", "json", "--quiet"]) == 0
    told = {Path(r["file"]).stem: r["label"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert main(["explain", *model, str(samples_dir), "--out", str(tmp_path / "o")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert len(lines) == 8
    for line in lines:
        stem = Path(line.split(" -> ")[0]).stem
        predicted = line.split("predicted ")[1].split(" (")[0]
        assert predicted == told[stem] and line.endswith(f"map of {told[stem]}"), line


def test_explain_decodes_each_file_once(tiny_checkpoint, samples_dir, tmp_path, monkeypatch, capsys) -> None:
    # The map and the predictor's answer come from one read of the file (they used to decode it twice).
    import braintumor.explain.files as files
    import braintumor.inference.inputs as inputs

    calls: list[str] = []
    real = files.read_scan

    def counting(source, **kw):
        calls.append(kw.get("name") or str(source))
        return real(source, **kw)

    monkeypatch.setattr(files, "read_scan", counting)
    monkeypatch.setattr(inputs, "read_scan", counting)
    scans = sorted(samples_dir.glob("*/*.jpg"))
    assert main(["explain", "--model", str(tiny_checkpoint), *map(str, scans), "--out", str(tmp_path / "o")]) == 0
    assert sorted(calls) == sorted(map(str, scans))
    assert len(list((tmp_path / "o").glob("*.png"))) == len(scans)
