"""`braintumor evaluate` end to end through `braintumor.cli.main`, with the tiny checkpoint and sample scans."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from braintumor import DISCLAIMER

from .conftest import LEAKED, CliRun, run_cli

GUIDE_KEYS = {"n", "class_names", "accuracy", "balanced_accuracy", "macro_f1", "auc_roc_macro", "ece"}
GUIDE_KEYS |= {"confusion_matrix", "per_class"}
EXTRA_KEYS = {"ci", "ece_uncalibrated", "brier", "nll", "temperature"}
PER_CLASS_KEYS = {"precision", "recall", "f1", "specificity", "support"}


def _evaluate(model: Path, data: Path, out: Path, *extra: str) -> CliRun:
    args = ["evaluate", "--model", str(model), "--data", str(data), "--out", str(out), "--bootstrap", "100"]
    return run_cli([*args, "--quiet", *extra], out)


def _rows(out: Path) -> list[dict]:
    with (out / "predictions.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _copy_classes(samples_dir: Path, dst: Path, classes: list[str]) -> Path:
    for c in classes:
        shutil.copytree(samples_dir / c, dst / c)
    return dst


def test_evaluate_writes_schema_and_predictions(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    run = _evaluate(tiny_checkpoint, samples_dir, tmp_path / "out")
    assert run.rc == 0, run.stderr
    assert {p.name for p in run.out.iterdir()} >= {"metrics.json", "predictions.csv", "report.html"}
    m = json.loads((run.out / "metrics.json").read_text(encoding="utf-8"))
    assert set(m) >= GUIDE_KEYS | EXTRA_KEYS
    assert "leak_free" not in m  # not asked for
    assert m["n"] == 8 and m["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    for row in m["per_class"].values():
        assert set(row) >= PER_CLASS_KEYS
    for key in ("accuracy", "macro_f1", "auc_roc_macro"):
        low, high = m["ci"][key]
        assert low - 1e-6 <= m[key] <= high + 1e-6  # bounds are rounded to 6 decimals
    assert m["ci"]["n_resamples"] == 100 and "stratified" in m["ci"]["resampling"]
    assert m["temperature"] == 1.0 and m["unreadable"] == []
    rows = _rows(run.out)
    assert len(rows) == 8
    assert set(rows[0]) == {"file", "true", "predicted", *(f"prob_{c}" for c in m["class_names"])}
    assert sum(r["true"] == r["predicted"] for r in rows) == round(m["accuracy"] * 8)
    assert "accuracy" in run.stdout and "macro AUC" in run.stdout and DISCLAIMER in run.stdout


def test_subset_of_classes(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    data = _copy_classes(samples_dir, tmp_path / "two", ["glioma", "pituitary"])
    run = _evaluate(tiny_checkpoint, data, tmp_path / "out")
    assert run.rc == 0, run.stderr
    m = json.loads((run.out / "metrics.json").read_text(encoding="utf-8"))
    assert m["n"] == 4
    assert len(m["confusion_matrix"]) == 4  # the model's four classes, two of them without scans
    assert m["per_class"]["meningioma"]["support"] == 0 and m["per_class"]["glioma"]["support"] == 2
    rows = _rows(run.out)
    assert len(rows) == 4
    wrong = sum(r["predicted"] != r["true"] for r in rows)
    assert m["accuracy"] == pytest.approx(1 - wrong / 4)  # predictions of absent classes are errors
    absent = m["per_class"]["meningioma"]
    assert absent["recall"] is None and absent["f1"] is None  # undefined, not a 0 that reads as a failure
    assert "no scans of meningioma, notumor: recall and F1 of those classes are n/a" in run.stdout
    assert "n/a" in (run.out / "report.html").read_text(encoding="utf-8")


def test_split_root_uses_test_split(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _copy_classes(samples_dir, root / "Testing", ["notumor"])
    _copy_classes(samples_dir, root / "Training", ["glioma", "meningioma"])
    run = _evaluate(tiny_checkpoint, root, tmp_path / "out")
    assert run.rc == 0, run.stderr
    files = [r["file"] for r in _rows(run.out)]
    assert len(files) == 2 and all(f.startswith("Testing/notumor/") for f in files)


def test_unknown_class_folder_is_a_clear_error(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    data = _copy_classes(samples_dir, tmp_path / "data", ["glioma"])
    shutil.copytree(samples_dir / "notumor", data / "astrocytoma")
    run = _evaluate(tiny_checkpoint, data, tmp_path / "out")
    assert run.rc == 2
    assert "astrocytoma" in run.stderr and "unknown to the model" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_model_is_a_clear_error(samples_dir: Path, tmp_path: Path) -> None:
    run = _evaluate(tmp_path / "nope", samples_dir, tmp_path / "out")
    assert run.rc == 2 and "model not found" in run.stderr


def test_unreadable_file_is_listed_and_skipped(tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path) -> None:
    data = _copy_classes(samples_dir, tmp_path / "data", ["glioma", "notumor"])
    (data / "glioma" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run = _evaluate(tiny_checkpoint, data, tmp_path / "out")
    assert run.rc == 0, run.stderr
    m = json.loads((run.out / "metrics.json").read_text(encoding="utf-8"))
    assert m["n"] == 4
    assert [Path(u["path"]).name for u in m["unreadable"]] == ["broken.jpg"]
    assert "broken.jpg" in run.stdout and "unreadable" in run.stdout
    assert len(_rows(run.out)) == 4


def test_leak_aware_evaluation(leak_eval: CliRun) -> None:
    assert leak_eval.rc == 0, leak_eval.stderr
    m = json.loads((leak_eval.out / "metrics.json").read_text(encoding="utf-8"))
    lf = m["leak_free"]
    assert set(lf) >= GUIDE_KEYS | EXTRA_KEYS
    assert m["n"] == 8 and lf["n"] == 6  # the two copied scans leak
    assert m["leak_audit"]["test_leaking"] == 2 and m["leak_audit"]["test_clean"] == 6
    rows = _rows(leak_eval.out)
    leaking = sorted(r["file"] for r in rows if r["leaks"] == "true")
    assert leaking == sorted(LEAKED)
    assert {r["leaks"] for r in rows} == {"true", "false"}
    assert (leak_eval.out / "audit" / "test_clean.txt").is_file()
    assert "leak-free subset" in leak_eval.stdout and "2 leaking, 6 clean" in leak_eval.stdout
    # glioma and notumor keep one clean scan each: the report warns that their figures rest on few scans
    assert any("glioma 1, " in n and "notumor 1" in n for n in m["notes"])
    # the intervals resample the audit's duplicate groups (8 distinct scans: 8 groups, 6 among the clean)
    assert m["ci"]["resampling"].startswith("duplicate groups") and m["ci"]["n_groups"] == 8
    assert lf["ci"]["n_groups"] == 6 and m["leak_audit"]["duplicate_groups"] == 8
    assert "(8 groups)" in leak_eval.stdout


def test_leak_audit_against_a_folder_holding_the_test_scans_is_refused(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    # the dataset root instead of its Training folder: every test scan would match itself
    root = tmp_path / "root"
    _copy_classes(samples_dir, root / "Testing", ["notumor", "glioma"])
    run = _evaluate(tiny_checkpoint, root / "Testing", tmp_path / "out", "--exclude-leaks-from", str(root))
    assert run.rc == 2 and "contains the scored folder" in run.stderr and "Training" in run.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_missing_training_folder_fails_before_predicting(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    run = _evaluate(tiny_checkpoint, samples_dir, tmp_path / "out", "--exclude-leaks-from", str(tmp_path / "nope"))
    assert run.rc == 2 and "training folder for the leak audit not found" in run.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_folders_named_otherwise_are_mapped_to_the_models_classes(
    tiny_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "other_names"
    for folder, cls in (("glioma_tumor", "glioma"), ("no_tumor", "notumor")):
        shutil.copytree(samples_dir / cls, data / folder)
    refused = _evaluate(tiny_checkpoint, data, tmp_path / "refused")
    assert refused.rc == 2 and "class folder(s) ['glioma_tumor', 'no_tumor'] unknown to the model" in refused.stderr
    mapping = tmp_path / "classes.txt"
    mapping.write_text("# folder names of other public sets\nglioma_tumor: glioma\nno_tumor=notumor\n")
    for spec in ("glioma_tumor=glioma,no_tumor=notumor", str(mapping)):
        run = _evaluate(tiny_checkpoint, data, tmp_path / "out", "--class-map", spec)
        assert run.rc == 0, run.stderr
        m = json.loads((run.out / "metrics.json").read_text(encoding="utf-8"))
        assert m["n"] == 4 and m["per_class"]["glioma"]["support"] == 2 and m["per_class"]["notumor"]["support"] == 2
