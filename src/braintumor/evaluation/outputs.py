"""The files and console text of an evaluation: metrics.json, predictions.csv, a plain-text table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from braintumor import DISCLAIMER, PATH_ERRORS
from braintumor.evaluation.result import HEADLINE, EvaluationResult

CI_KEYS = ("accuracy", "macro_f1", "auc_roc_macro", "ece")


def metrics_json(result: EvaluationResult) -> dict:
    """metrics.json: the whole set's figures at top level (GUIDE schema), `leak_free` beside them."""
    out = dict(result.metrics)
    if result.leak_free is not None:
        out["leak_free"] = result.leak_free
        out["leak_audit"] = result.audit
    out["unreadable"] = [{"path": p, "reason": r} for p, r in result.unreadable]
    out["model"] = result.model
    out["data"] = {"path": str(result.data), "split": result.split}
    out["notes"] = list(result.notes)
    out["disclaimer"] = DISCLAIMER
    return out


def _clean_json(value):
    """NaN/inf are not JSON; write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def write_metrics(result: EvaluationResult, path: Path) -> None:
    text = json.dumps(_clean_json(metrics_json(result)), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8", errors=PATH_ERRORS)


def write_predictions(result: EvaluationResult, path: Path) -> None:
    """One row per scored scan: file, true, predicted, calibrated probability per class, leaks (when audited)."""
    names = result.class_names
    probs = result.probs
    header = ["file", "true", "predicted", *(f"prob_{c}" for c in names)]
    if result.leaks is not None:
        header.append("leaks")
    with path.open("w", newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, file in enumerate(result.files):
            row = [file, names[result.labels[i]], names[int(probs[i].argmax())], *(f"{p:.6f}" for p in probs[i])]
            if result.leaks is not None:
                flag = result.leaks[i]
                row.append("" if flag is None else str(flag).lower())
            writer.writerow(row)


def fmt(value, ci: list[float] | None = None) -> str:
    """A figure with 3 decimals (integers as they are), its 95 % CI in brackets when given; 'n/a' when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = str(value) if isinstance(value, int) else f"{value:.3f}"
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def headline_rows(metrics: dict) -> dict[str, str]:
    """HEADLINE key -> formatted figure (with its CI for accuracy, macro F1, macro AUC and calibrated ECE)."""
    ci = metrics.get("ci") or {}
    return {k: fmt(metrics.get(k), ci.get(k) if k in CI_KEYS else None) for k in HEADLINE}


def console_table(result: EvaluationResult) -> str:
    """Plain-text summary: headline figures (whole vs leak-free), per-class figures, unreadable files."""
    columns = {"whole test set": headline_rows(result.metrics)}
    if result.leak_free is not None:
        columns["leak-free subset"] = headline_rows(result.leak_free)
    width = max(len(v) for v in HEADLINE.values())
    col_w = {c: max(len(c), *(len(v) for v in rows.values())) for c, rows in columns.items()}
    lines = [f"{'':<{width}}  " + "  ".join(f"{c:>{col_w[c]}}" for c in columns)]
    for key, label in HEADLINE.items():
        lines.append(f"{label:<{width}}  " + "  ".join(f"{rows[key]:>{col_w[c]}}" for c, rows in columns.items()))
    ci = result.metrics.get("ci")
    if ci:
        groups = f" ({ci['n_groups']} groups)" if "n_groups" in ci else ""
        lines.append(
            f"[{ci['confidence'] * 100:g} % CI: {ci['method']}, {ci['resampling']}{groups}, "
            f"{ci['n_resamples']} resamples, seed {ci['seed']}]"
        )
    if result.audit:
        a = result.audit
        lines.append(
            f"leak audit against {a['against']}: {a['test_leaking']} leaking, {a['test_clean']} clean, "
            f"{a['not_audited']} not audited (lists in {a['audit_dir']})"
        )
    lines += ["", per_class_table(result.metrics)]
    if result.unreadable:
        lines += ["", f"{len(result.unreadable)} unreadable file(s) skipped:"]
        lines += [f"  {reason}" for _path, reason in result.unreadable]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def per_class_table(metrics: dict) -> str:
    """Per-class precision, recall (sensitivity), F1, specificity, AUC and support as plain text."""
    per_class = metrics["per_class"]
    width = max(8, *(len(c) for c in per_class))
    fields = ("precision", "recall", "f1", "specificity", "auc_roc", "support")
    lines = [f"{'class':<{width}}  " + "  ".join(f"{f:>11}" for f in fields)]
    for name, row in per_class.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{fmt(row.get(f)):>11}" for f in fields))
    for avg in ("macro", "weighted"):
        if avg in metrics:
            row = metrics[avg]
            cells = [fmt(row.get(f)) if f in row else "" for f in fields]
            lines.append(f"{avg:<{width}}  " + "  ".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)
