"""Predict many files in batches, for `braintumor predict`: progress on stderr, results as they come."""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from braintumor import shown_name
from braintumor.inference.backends import cpu_count
from braintumor.inference.inputs import ScanInput, read_input
from braintumor.inference.output import PredictionWriter
from braintumor.inference.predictor import Prediction, Predictor


@dataclass
class BatchSummary:
    """Counts of one run, and the overlays written."""

    predicted: int = 0
    refused: int = 0
    errors: int = 0
    overlays: list[Path] = field(default_factory=list)
    caveats: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, caveat) -> answers that carry it


def predict_files(
    predictor: Predictor,
    files: Sequence[Path],
    writer: PredictionWriter,
    *,
    explain_dir: Path | None = None,
    progress: bool = True,
    err: TextIO | None = None,
) -> BatchSummary:
    """Read, predict and write every file; one stderr line per unreadable or refused file, the rest go on.

    Files are decoded on a few threads (decoders release the GIL) while batches run through the model.
    With `explain_dir`, a CAM overlay (LayerCAM) `<stem>_gradcam.png` is written for every predicted scan.
    """
    err = err or sys.stderr  # looked up per call: tests and callers may swap sys.stderr
    summary = BatchSummary()
    names: set[str] = set()
    bar = tqdm(total=len(files), unit="scan", desc="predict", disable=not progress, file=err)
    # The readers silence Pillow's warnings about damage they handle (bad EXIF...) with catch_warnings,
    # which is not thread-safe: one thread leaving it can unmute another. Muting them around the pool
    # keeps them out of the output whatever the interleaving.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=min(4, cpu_count())) as pool:
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        for start in range(0, len(files), predictor.batch_size):
            chunk = files[start : start + predictor.batch_size]
            inputs = list(pool.map(read_input, chunk))
            predictions = predictor.predict_inputs(inputs)
            with tqdm.external_write_mode(file=err):  # rows on a terminal never share the progress bar's line
                writer.write(predictions)
            for item, pred in zip(inputs, predictions, strict=True):
                # a table already shows each error and refusal in its row; other formats are for programs
                _count(summary, pred, err if writer.fmt != "table" else None)
                if explain_dir is not None and pred.label is not None:
                    summary.overlays.append(_write_overlay(predictor, item, pred.label, explain_dir, names))
            bar.update(len(chunk))
    bar.close()
    return summary


def _count(summary: BatchSummary, pred: Prediction, err: TextIO | None) -> None:
    """Count the answer; name an error or refusal on `err` (None: the output itself shows it)."""
    if pred.error:
        summary.errors += 1
        if err is not None:
            tqdm.write(f"braintumor: error: {shown_name(pred.file)}: {shown_name(pred.error)}", file=err)
    elif not pred.in_distribution:
        summary.refused += 1
        if err is not None:
            tqdm.write(f"braintumor: refused: {shown_name(pred.file)}: {pred.note}", file=err)
    else:
        summary.predicted += 1
        if pred.caveat and pred.label:
            summary.caveats[(pred.label, pred.caveat)] += 1


def _write_overlay(predictor: Predictor, item: ScanInput, label: str, out_dir: Path, taken: set[str]) -> Path:
    """Write the overlay under a name unique in this run (two inputs may share a stem in different folders).

    The map explains the reported `label`: the explainer's own single-view argmax can differ from the
    prediction (mirror averaging, calibration), and a map of another class would contradict the answer.
    """
    assert item.scan is not None  # only predicted inputs get here
    png, _ = predictor.explain_png(item.scan, target=label)
    stem = Path(item.name).name.split(".")[0] or "scan"
    name, n = f"{stem}_gradcam.png", 2
    while name in taken:
        name, n = f"{stem}-{n}_gradcam.png", n + 1
    taken.add(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(png)
    return path
