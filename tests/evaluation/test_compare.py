"""`braintumor compare`: figures of evaluation folders and training runs side by side."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from braintumor.evaluation.compare import compare_rows, format_table, load_figures

from .conftest import CliRun, run_cli


def _run_dir(root: Path, accuracy: float) -> Path:
    """A training run folder as `braintumor train` leaves it (val_metrics.json + model.json)."""
    root.mkdir(parents=True)
    figures = {"n": 40, "accuracy": accuracy, "macro_f1": 0.5, "auc_roc_macro": 0.75, "ece": 0.05}
    (root / "val_metrics.json").write_text(json.dumps(figures), encoding="utf-8")
    (root / "model.json").write_text(json.dumps({"arch": "resnet18", "metrics": {"validation": figures}}))
    return root


def test_compare_eval_and_run_folders(leak_eval: CliRun, tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run_a", 0.875)
    out_md, out_csv = tmp_path / "table.md", tmp_path / "table.csv"
    res = run_cli(["compare", str(leak_eval.out), str(run), "--out", str(out_md)], tmp_path)
    assert res.rc == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "figures", "on"]
    assert "out" in lines[1] and "test" in lines[1] and "simple_cnn" in lines[1]
    assert "run_a" in lines[2] and "validation" in lines[2] and "resnet18" in lines[2] and "0.875" in lines[2]
    assert "leak-free acc." in lines[0]
    md = out_md.read_text(encoding="utf-8").splitlines()
    assert md[0].startswith("| model |") and md[1].startswith("|---|") and len(md) == 4
    assert run_cli(["compare", str(leak_eval.out), str(run), "--out", str(out_csv)], tmp_path).rc == 0
    with out_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    m = json.loads((leak_eval.out / "metrics.json").read_text(encoding="utf-8"))
    assert float(rows[0]["accuracy"]) == pytest.approx(m["accuracy"])
    assert float(rows[0]["accuracy_ci_low"]) == pytest.approx(m["ci"]["accuracy"][0])
    assert int(rows[0]["leak_free_n"]) == 6 and rows[1]["leak_free_n"] == ""


def test_clashing_folder_names_are_shown_as_paths(tmp_path: Path) -> None:
    a, b = _run_dir(tmp_path / "a" / "run", 0.1), _run_dir(tmp_path / "b" / "run", 0.2)
    assert [r["model"] for r in compare_rows([a, b])] == [str(a), str(b)]


def test_sidecar_only_and_direct_file(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "run_b", 0.5)
    (run / "val_metrics.json").unlink()
    row = load_figures(run)
    assert (row["source"], row["arch"], row["accuracy"]) == ("validation", "resnet18", 0.5)
    assert load_figures(run / "model.json")["model"] == "run_b"


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_figures(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"holds no metrics\.json"):
        load_figures(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read it as JSON"):
        load_figures(tmp_path)
    with pytest.raises(ValueError, match="unknown table style"):
        format_table(compare_rows([_run_dir(tmp_path / "r", 0.1)]), "xml")
    res = run_cli(["compare", str(tmp_path / "r"), "--out", str(tmp_path / "t.txt")], tmp_path)
    assert res.rc == 2 and ".csv or .md" in res.stderr
