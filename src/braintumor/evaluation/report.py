"""report.html: one self-contained page (inline CSS, images as base64 PNG data URIs, no scripts, no requests)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from braintumor import DISCLAIMER, __version__
from braintumor.evaluation import plots
from braintumor.evaluation.outputs import fmt, headline_rows
from braintumor.evaluation.result import HEADLINE, EvaluationResult

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 28px 40px; }
h1 { font-size: 24px; margin: 10px 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #d5d9e0; padding-bottom: 4px; }
.disclaimer { background: #fff4d6; border: 1px solid #e0b53c; padding: 8px 12px; border-radius: 6px; font-weight: 600; }
.meta { color: #4a5263; font-size: 13px; } .meta code { font-size: 12px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5d9e0; padding: 5px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #e9edf3; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.figs figure { margin: 0; background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; padding: 6px; }
.thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }
.thumbs figure { margin: 0; background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; padding: 6px; }
.thumbs img { width: 100%; aspect-ratio: 1; object-fit: contain; background: #000; }
.thumbs figcaption { font-size: 12px; overflow-wrap: anywhere; }
.leak { background: #fde2e0; color: #8c1d18; border-radius: 4px; padding: 0 4px; font-size: 11px; }
.warn { background: #fdecea; border-left: 4px solid #b3261e; padding: 6px 10px; font-size: 14px; }
.wrong { color: #b3261e; font-weight: 600; } .note { color: #4a5263; font-size: 13px; }
"""


def figure_data_uri(fig: Figure, dpi: int = 100) -> str:
    """PNG data URI of a matplotlib Figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_data_uri(pixels: np.ndarray, max_side: int = 256) -> str:
    """PNG data URI of a uint8 grayscale (H, W) or RGB (H, W, 3) image, shrunk to at most `max_side`."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig: Figure, alt: str) -> str:
    return f'<figure><img src="{figure_data_uri(fig)}" alt="{escape(alt)}"></figure>'


def _summary_table(result: EvaluationResult) -> str:
    columns = {"whole test set": headline_rows(result.metrics)}
    if result.leak_free is not None:
        columns["leak-free subset"] = headline_rows(result.leak_free)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{escape(label)}</td>" + "".join(f"<td>{escape(r[key])}</td>" for r in columns.values()) + "</tr>"
        for key, label in HEADLINE.items()
    )
    ci = result.metrics.get("ci")
    note = (
        f'<p class="note">Brackets: {ci["confidence"]:.0%} confidence intervals, {escape(ci["method"])}, '
        f"resampling {escape(ci['resampling'])}, {ci['n_resamples']} resamples, seed {ci['seed']}. "
        "Probabilities are calibrated (softmax of logits / T) unless marked T = 1.</p>"
        if ci
        else ""
    )
    return f"<table><thead><tr><th>figure</th>{head}</tr></thead><tbody>{rows}</tbody></table>{note}"


def _subsets(result: EvaluationResult) -> list[tuple[str, np.ndarray, dict]]:
    """(title, row mask, metrics) of each scored subset: the whole set, then the leak-free one."""
    out = [("whole test set", np.ones(len(result.labels), dtype=bool), result.metrics)]
    mask = result.clean_mask
    if mask is not None and mask.any() and result.leak_free:
        out.append(("leak-free subset", mask, result.leak_free))
    return out


def _figures(result: EvaluationResult) -> str:
    probs, raw = result.probs, result.probs_uncalibrated
    names, parts = result.class_names, []
    for title, mask, m in _subsets(result):
        n = int(mask.sum())
        y = result.labels[mask]
        parts.append(f"<h2>Figures: {escape(title)} (n = {n})</h2><div class='figs'>")
        curves = {"before (T = 1)": raw[mask], f"after (T = {result.temperature:.2f})": probs[mask]}
        figs = {
            "confusion matrix": plots.confusion_matrix_figure(m["confusion_matrix"], names, f"Confusion, {title}"),
            "ROC curves": plots.roc_figure(y, probs[mask], names, f"ROC, {title}"),
            "reliability diagram": plots.reliability_figure(y, curves, title=f"Reliability, {title}"),
            "per-class bars": plots.per_class_figure(m["per_class"], title=f"Per class, {title}"),
        }
        parts += [_figure(fig, f"{alt}, {title}") for alt, fig in figs.items()]
        parts.append(f"</div><h3>Per class, {escape(title)}</h3>{_per_class_table(m)}")
    return "".join(parts)


def _per_class_table(m: dict) -> str:
    fields = ("precision", "recall", "f1", "specificity", "auc_roc", "support")
    head = "".join(f"<th>{f}</th>" for f in ("class", *fields))
    rows = [(escape(name), row) for name, row in m["per_class"].items()]
    rows += [(f"<i>{avg} average</i>", m[avg]) for avg in ("macro", "weighted") if avg in m]
    body = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{fmt(row[f]) if f in row else ''}</td>" for f in fields) + "</tr>"
        for name, row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _thumbnails(result: EvaluationResult) -> str:
    if not result.examples:
        return "<p>No misclassified scans.</p>"
    cells = []
    for ex in result.examples:
        shown = ex.overlay if ex.overlay is not None else ex.image
        kind = "LayerCAM of the predicted class" if ex.overlay is not None else "model input"
        leak = ' <span class="leak">copy in training</span>' if ex.leaks else ""
        cells.append(
            f'<figure><img src="{image_data_uri(shown)}" alt="{escape(ex.file)}"><figcaption>'
            f'true <b>{escape(ex.true)}</b> &rarr; <span class="wrong">{escape(ex.predicted)}</span> '
            f"({ex.confidence:.1%}){leak}<br>{escape(ex.file)}<br><i>{kind}</i></figcaption></figure>"
        )
    return f"<div class='thumbs'>{''.join(cells)}</div>"


def _header(result: EvaluationResult) -> str:
    m = result.model
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    audit = result.audit
    leak = (
        f"<br>Leak audit against <code>{escape(audit['against'])}</code>: {audit['test_leaking']} test scans leak "
        f"(copy or near-copy in training), {audit['test_clean']} clean, {audit['not_audited']} not audited; "
        f"details in <code>{escape(audit['audit_dir'])}</code>."
        if audit
        else "<br>No leak audit (run with --exclude-leaks-from TRAIN_DIR for leak-free figures)."
    )
    return (
        f"<h1>Evaluation of {escape(m.get('arch', '?'))}</h1>"
        f'<p class="disclaimer">{escape(DISCLAIMER)}</p>'
        f'<p class="meta">Model <code>{escape(m.get("path", "?"))}</code> &middot; '
        f"data <code>{escape(str(result.data))}</code> (split {escape(result.split)}) &middot; "
        f"{len(result.files)} scans scored, "
        f"{len(result.unreadable)} unreadable &middot; temperature {result.temperature:.3f} &middot; "
        f"test-time augmentation {escape(str(m.get('tta', 'none')))} &middot; "
        f"braintumor {__version__} &middot; {when}{leak}</p>"
    )


def render_report(result: EvaluationResult) -> str:
    """The whole report as one HTML string."""
    body = [
        _header(result),
        "<h2>Summary</h2>",
        _summary_table(result),
        *(f'<p class="warn">Note: {escape(n)}</p>' for n in result.notes),  # beside the figures they qualify
        _figures(result),
        f"<h2>Most confident mistakes ({len(result.examples)})</h2>",
        _thumbnails(result),
    ]
    if result.unreadable:
        items = "".join(f"<li>{escape(reason)}</li>" for _p, reason in result.unreadable)
        body.append(f"<h2>Unreadable files (skipped)</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>braintumor evaluation</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_report(result: EvaluationResult, path: str | Path) -> Path:
    """Write report.html; returns its path."""
    path = Path(path)
    path.write_text(render_report(result), encoding="utf-8", errors="backslashreplace")  # valid HTML
    return path
