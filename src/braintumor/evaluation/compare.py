"""`braintumor compare`: several models' figures side by side, from evaluation folders or training runs.

Sources, tried in this order for each path:
    DIR/metrics.json       written by `braintumor evaluate` (test figures, leak-free ones when audited)
    DIR/val_metrics.json   written by `braintumor train` (validation figures)
    DIR/model.json         a checkpoint sidecar's `metrics` (validation figures)
A path may also name one of these files directly.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from braintumor.evaluation.outputs import fmt

# Row key -> column title. Columns empty in every row are dropped from the table.
COLUMNS = {
    "model": "model",
    "source": "figures on",
    "arch": "arch",
    "n": "n",
    "accuracy": "accuracy",
    "accuracy_ci": "accuracy 95% CI",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro F1",
    "macro_f1_ci": "macro F1 95% CI",
    "auc_roc_macro": "macro AUC",
    "ece": "ECE",
    "brier": "Brier",
    "leak_free_n": "leak-free n",
    "leak_free_accuracy": "leak-free acc.",
    "leak_free_macro_f1": "leak-free macro F1",
    "leak_free_auc_roc_macro": "leak-free macro AUC",
}
_TEXT_COLUMNS = ("model", "source", "arch")  # left-aligned; figures are right-aligned
_FIGURES = ("n", "accuracy", "balanced_accuracy", "macro_f1", "auc_roc_macro", "ece", "brier")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as JSON ({exc})") from None


def _source(path: Path) -> tuple[Path, str]:
    """The metrics file behind a path and what kind it is: "test", "validation" or "sidecar"."""
    kinds = {"metrics.json": "test", "val_metrics.json": "validation", "model.json": "sidecar"}
    if path.is_file():
        if path.name not in kinds:
            raise ValueError(f"{path}: not a metrics.json, val_metrics.json or model.json file")
        return path, kinds[path.name]
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (expected an evaluation folder or a training run folder)")
    for name, kind in kinds.items():
        if (path / name).is_file():
            return path / name, kind
    raise ValueError(f"{path}: holds no metrics.json (braintumor evaluate), val_metrics.json or model.json (train)")


def load_figures(path: str | Path) -> dict:
    """One table row: the headline figures found at `path` (see the module docstring for the sources).

    Raises:
        FileNotFoundError: the path does not exist. ValueError: it holds no readable figures.
    """
    path = Path(path)
    file, kind = _source(path)
    data = _read_json(file)
    arch = (data.get("model") or {}).get("arch") if kind == "test" else None
    if kind == "sidecar":
        arch, data = data.get("arch"), (data.get("metrics") or {}).get("validation") or {}
        kind = "validation"
    elif kind == "validation":
        sidecar = file.parent / "model.json"
        arch = _read_json(sidecar).get("arch") if sidecar.is_file() else None
    if "accuracy" not in data:
        raise ValueError(f"{file}: no figures in it (no 'accuracy')")
    label = (path.parent if path.is_file() else path).name or str(path)
    row = {"model": label, "path": str(path), "source": kind, "arch": arch, **{k: data.get(k) for k in _FIGURES}}
    ci = data.get("ci") or {}
    row["accuracy_ci"], row["macro_f1_ci"] = ci.get("accuracy"), ci.get("macro_f1")
    leak_free = data.get("leak_free") or {}
    for key in ("n", "accuracy", "macro_f1", "auc_roc_macro"):
        row[f"leak_free_{key}"] = leak_free.get(key)
    return row


def compare_rows(paths: list[str | Path]) -> list[dict]:
    """One row per path, in the order given; rows whose folder names clash are named by their path."""
    if not paths:
        raise ValueError("compare: give at least one evaluation or run folder")
    rows = [load_figures(p) for p in paths]
    names = [r["model"] for r in rows]
    for r in rows:
        if names.count(r["model"]) > 1:  # e.g. several evaluations all written to a folder called "out"
            r["model"] = r["path"]
    return rows


def _columns(rows: list[dict]) -> list[str]:
    return [k for k in COLUMNS if any(r.get(k) not in (None, "") for r in rows)]


def _cell(value) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return value if isinstance(value, str) else fmt(value)


def format_table(rows: list[dict], style: str = "text") -> str:
    """The rows as "text" (aligned columns), "md" (Markdown table) or "csv" (raw numbers, CIs as low/high)."""
    cols = _columns(rows)
    if style == "csv":
        return _csv(rows, cols)
    cells = [[COLUMNS[c] for c in cols]] + [[_cell(r.get(c)) for c in cols] for r in rows]
    if style == "md":
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" if c in _TEXT_COLUMNS else "---:" for c in cols) + "|")
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"unknown table style {style!r}; use text, md or csv")
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    left = [c in _TEXT_COLUMNS for c in cols]
    return "\n".join(
        "  ".join(x.ljust(w) if lj else x.rjust(w) for x, w, lj in zip(row, widths, left, strict=True)) for row in cells
    )


def _csv(rows: list[dict], cols: list[str]) -> str:
    header: list[str] = []
    for c in cols:
        header += [f"{c}_low", f"{c}_high"] if c.endswith("_ci") else [c]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        out = []
        for c in cols:
            v = r.get(c)
            out += (list(v) if v else ["", ""]) if c.endswith("_ci") else ["" if v is None else v]
        writer.writerow(out)
    return buf.getvalue()


def write_table(rows: list[dict], path: str | Path) -> Path:
    """Write the table as CSV (.csv) or Markdown (.md), chosen by the suffix."""
    path = Path(path)
    style = {".csv": "csv", ".md": "md"}.get(path.suffix.lower())
    if style is None:
        raise ValueError(f"{path}: --out must end in .csv or .md")
    text = format_table(rows, style)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
