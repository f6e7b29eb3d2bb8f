"""`braintumor predict` and `braintumor export` through `braintumor.cli.main`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from braintumor.cli import main

KEYS = {"file", "label", "probabilities", "confidence", "in_distribution", "error"}


def test_predict_json_one_object_per_input_and_error_lines(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rc = main(["predict", str(samples_dir), str(bad), "--model", str(tiny_checkpoint), "--format", "json", "--quiet"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 1  # some input failed
    assert len(rows) == 9 and all(set(r) >= KEYS for r in rows)
    assert sum(r["error"] is not None for r in rows) == 1 and rows[-1]["file"] == str(bad)
    assert all(r["label"] in r["probabilities"] for r in rows[:8])
    assert f"braintumor: error: {bad}:" in err
    assert "8 predicted, 0 refused, 1 unreadable of 9 file(s)" in err
    assert "README.md" not in out  # the samples folder's README is left out, and said so:
    assert f"{samples_dir / 'README.md'}: left out: not a scan file" in err


def test_odd_file_names_give_valid_utf8_and_one_line_each(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "odd"
    folder.mkdir()
    scan = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    names = [b"bad\xff.jpg", b"two\nERROR    forged.jpg", b"ok.jpg"]
    for name in names:
        Path(os.fsdecode(os.fsencode(folder) + b"/" + name)).write_bytes(scan)
    (folder / "anim.gif").write_bytes(b"GIF89a" + bytes(100))
    base = [sys.executable, "-m", "braintumor.cli", "predict", str(folder), "--model", str(tiny_checkpoint), "--quiet"]
    for fmt, rows in (("json", 3), ("table", 4)):
        proc = subprocess.run([*base, "--format", fmt], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout.decode("utf-8")  # valid UTF-8, whatever the names hold
        lines = out.splitlines()
        assert len(lines) == rows, out  # a newline in a name forges no line
        if fmt == "json":
            files = sorted(json.loads(line)["file"] for line in lines)
            assert files == sorted(f"{folder}/{n}" for n in ("bad\\xff.jpg", "two\\nERROR    forged.jpg", "ok.jpg"))
        err = proc.stderr.decode("utf-8")
        assert f"{folder / 'anim.gif'}: left out: not a scan file" in err  # the skipped file is named


def test_predict_csv_and_table(tiny_checkpoint: Path, samples_dir: Path, capsys: pytest.CaptureFixture) -> None:
    pattern = str(samples_dir / "*" / "Te-gl_*.jpg")
    assert main(["predict", pattern, "--model", str(tiny_checkpoint), "--format", "csv", "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and rows[0]["p_glioma"] and rows[0]["in_distribution"] == "True"
    assert main(["predict", pattern, "--model", str(tiny_checkpoint), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["label", "conf", "probabilities"] and len(lines) == 3


def test_predict_batches_with_progress_on_stderr(
    tiny_checkpoint: Path, samples_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    rc = main(["predict", str(samples_dir), "--model", str(tiny_checkpoint), "--format", "json", "--batch-size", "3"])
    out, err = capsys.readouterr()
    assert rc == 0 and len(out.splitlines()) == 8
    assert "predict" in err and "8/8" in err  # tqdm's bar, on stderr only


def test_predict_explain_writes_overlays_at_scan_size(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(samples_dir / "glioma", folder / "a")
    shutil.copytree(samples_dir / "glioma", folder / "b")  # same stems twice: names must not collide
    out = tmp_path / "overlays"
    assert main(["predict", str(folder), "--model", str(tiny_checkpoint), "--explain", str(out), "--quiet"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4
    assert Image.open(pngs[0]).size == Image.open(next((folder / "a").iterdir())).size


def test_predict_without_inputs_is_an_error(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rc = main(["predict", str(tmp_path / "*.jpg"), "--model", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert rc == 2 and "no file matches this pattern" in err and "no input files" in err


def test_default_model_missing_is_a_clear_error(samples_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from braintumor.models.default import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("this install ships a default model")
    assert main(["predict", str(samples_dir), "--quiet"]) == 2
    assert "no default model" in capsys.readouterr().err


def test_export_onnx_then_predict_with_onnx(
    model_copy: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export", "--model", str(model_copy)]) == 0
    out = capsys.readouterr().out
    assert (model_copy / "model.onnx").is_file() and "max |p_onnx - p_torch| on 8 sample scans" in out
    assert float(out.rsplit(": ", 1)[1].rstrip(")\n")) < 1e-4
    rc = main(
        ["predict", str(samples_dir), "--model", str(model_copy), "--backend", "onnx", "--format", "json", "--quiet"]
    )
    assert rc == 0 and len(capsys.readouterr().out.splitlines()) == 8


def test_export_fits_the_ood_check_from_a_dataset(
    model_copy: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(samples_dir, data / "train", ignore=shutil.ignore_patterns("*.md"))
    for scan in sorted(samples_dir.glob("*/*.jpg")):  # validation: the samples mirrored, a little further away
        (data / "val" / scan.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(scan).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(data / "val" / scan.parent.name / scan.name)
    elsewhere = tmp_path / "deploy" / "m.onnx"
    args = ["export", "--model", str(model_copy), "--out", str(elsewhere), "--ood-from", str(data), "--quiet"]
    assert main([*args, "--ood-percentile", "100"]) == 0
    assert "OOD check: threshold" in capsys.readouterr().out
    assert (model_copy / "model.ood.json").is_file()
    assert (elsewhere.parent / "m.ood.json").is_file()  # copied beside the ONNX file, which looks for it there
    rc = main(["predict", str(samples_dir), "--model", str(elsewhere), "--format", "json", "--quiet"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0, err
    assert all(r["ood_score"] is not None and r["in_distribution"] for r in rows)


def test_ood_threshold_split_keeps_duplicate_groups_together(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path):
    from braintumor.models import load_model
    from braintumor.training.ood_fit import fit_ood_on_dataset

    data, rows = tmp_path / "data", ["path,group"]
    for scan in sorted(samples_dir.glob("*/*.jpg")):  # every scan and three near-copies: one group of 4
        (data / scan.parent.name).mkdir(parents=True, exist_ok=True)
        for k in range(4):
            img = Image.open(scan).convert("L").rotate(k)
            img.save(data / scan.parent.name / f"{scan.stem}_{k}.png")
            rows.append(f"{scan.parent.name}/{scan.stem}_{k}.png,{scan.stem}")
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")
    loaded = load_model(tiny_checkpoint)
    kwargs = {"val_fraction": 0.5, "stats_layer": None}
    detector = fit_ood_on_dataset(loaded, data, groups_csv=tmp_path / "groups.csv", **kwargs)
    assert detector.info["n_val"] == 16 and detector.info["n_train"] == 16  # one whole group per class held out
    assert detector.info["threshold_split"].startswith("group-aware")
    assert main(["export", "--model", str(tiny_checkpoint), "--ood-groups-csv", str(tmp_path / "groups.csv")]) == 2


def test_export_format_none_needs_data(model_copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--model", str(model_copy), "--format", "none"]) == 2
    assert "needs --ood-from" in capsys.readouterr().err


def test_file_system_mistakes_are_messages_not_tracebacks(
    model_copy: Path, samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    scan = str(next(samples_dir.glob("glioma/*.jpg")))
    assert main(["predict", scan, "--model", str(model_copy), "--explain", str(a_file), "--quiet"]) == 2
    assert f"{a_file}: exists and is not a folder" in capsys.readouterr().err
    assert main(["data", "check", str(samples_dir), "--out", str(tmp_path)]) == 2  # a folder where a file goes
    assert f"{tmp_path}: Is a directory" in capsys.readouterr().err
    assert main(["export", "--model", str(model_copy), "--out", str(tmp_path)]) == 2
    assert "is a folder; give the .onnx file to write" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp"))
    (model_copy / "model.ood.safetensors").write_bytes(b"\x05")  # a truncated OOD file beside a valid json
    (model_copy / "model.ood.json").write_text("{}")
    assert main(["predict", scan, "--model", str(model_copy), "--quiet"]) == 2
    assert "unreadable out-of-distribution detector" in capsys.readouterr().err


def test_a_file_name_that_is_not_utf8_is_kept_and_stops_nothing(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path
):
    # Linux file names are bytes; with a strict UTF-8 stdout (a desktop's en_US.UTF-8) one such name used to end
    # the run at its row. A real process, since the point is the interpreter's own stream settings.
    import os
    import subprocess
    import sys

    folder = tmp_path / "scans"
    shutil.copytree(samples_dir / "glioma", folder)
    odd = os.fsencode(folder) + b"/bad\xffname.jpg"
    with open(odd, "wb") as fh:
        fh.write(next(samples_dir.glob("notumor/*.jpg")).read_bytes())
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    cmd = [sys.executable, "-m", "braintumor.cli", "predict", str(folder), "--model", str(tiny_checkpoint)]
    run = subprocess.run([*cmd, "--format", "csv", "--quiet"], capture_output=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    rows = run.stdout.splitlines()[1:]
    assert len(rows) == 3 and any(b"bad\xffname.jpg" in r for r in rows)  # the name's bytes, unchanged
    out, data = tmp_path / "check.tsv", tmp_path / "data"
    shutil.copytree(samples_dir / "notumor", data / "notumor")
    (data / "notumor" / "bad\udcffbroken.jpg").write_bytes(b"not a jpeg")  # the surrogate is byte 0xff on disk
    assert main(["data", "check", str(data), "--out", str(out), "--quiet"]) == 0
    assert b"bad\xffbroken.jpg" in out.read_bytes()


def test_overlays_explain_the_reported_label(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    # The explainer runs one view; the answer may come from mirror averaging and calibration. The map must
    # be of the class the user is told, whatever the explainer's own argmax.
    from braintumor.inference import load_predictor
    from braintumor.inference.batch import predict_files
    from braintumor.inference.output import PredictionWriter

    predictor = load_predictor(tiny_checkpoint)
    asked: list[str | None] = []
    real = predictor.explain_png

    def spy(scan, **kwargs):
        asked.append(kwargs.get("target"))
        return real(scan, **kwargs)

    predictor.explain_png = spy
    out = io.StringIO()
    files = sorted(samples_dir.glob("*/*.jpg"))
    predict_files(
        predictor, files, PredictionWriter(out, "json", predictor.class_names), explain_dir=tmp_path, progress=False
    )
    labels = [json.loads(line)["label"] for line in out.getvalue().splitlines()]
    assert asked == labels and len(asked) == 8


def test_an_onnx_export_older_than_the_sidecar_is_refused(model_copy: Path, samples_dir: Path, capsys) -> None:
    from braintumor.models import update_metadata

    assert main(["export", "--model", str(model_copy)]) == 0
    update_metadata(model_copy, temperature=3.0)  # what `calibrate` does, without touching the weights
    capsys.readouterr()
    assert main(["predict", str(samples_dir), "--model", str(model_copy), "--backend", "onnx", "--quiet"]) == 2
    assert "exported before the model's temperature changed" in capsys.readouterr().err


def test_a_missing_file_is_reported_once_in_the_table(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.jpg"
    assert main(["predict", str(missing), "--model", str(tiny_checkpoint), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert (out + err).count(str(missing)) == 1 and "file not found" in out  # its table row says it all
    assert "0 predicted, 0 refused, 1 unreadable of 1 file(s)" in err


def test_a_misspelled_flag_shows_the_commands_own_usage(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--frmat", "json", "x.jpg"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: braintumor predict") and "unrecognized arguments: --frmat" in err
    with pytest.raises(SystemExit):
        main(["data", "audit", "d", "--out", "o", "--nieghbours", "3"])
    assert "usage: braintumor data audit" in capsys.readouterr().err


def test_serve_on_a_busy_port_fails_before_loading_the_model(tiny_checkpoint: Path, capsys, monkeypatch) -> None:
    import socket

    import braintumor.serve.app
    from braintumor.cli.serve import ENV

    def no_app(*args, **kwargs):
        raise AssertionError("the app (and its model) was built although the port is taken")

    monkeypatch.setattr(braintumor.serve.app, "create_app", no_app)
    for var in ENV.values():  # serve hands its flags to uvicorn's workers in these: restored afterwards
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--model", str(tiny_checkpoint)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
