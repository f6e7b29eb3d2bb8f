"""`braintumor predict` output: a table for people, CSV for spreadsheets, JSON lines for programs.

Each writer prints rows as batches finish, so a long run shows results as it goes. JSON is one object per
line per input, with the GUIDE's keys (file, label, probabilities, confidence, in_distribution, error)
plus `ood_score`, `note` and `caveat`. Table and JSON show file names as valid UTF-8 on one line
(`shown_name`); CSV, a list for other tools, keeps a name's exact bytes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import TextIO

from braintumor import shown_name
from braintumor.inference.predictor import Prediction

FORMATS = ("table", "csv", "json")


class PredictionWriter:
    """Writes predictions to a stream in one of `FORMATS`; call `write` per batch."""

    def __init__(self, stream: TextIO, fmt: str, class_names: Sequence[str]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
        self.stream, self.fmt, self.class_names = stream, fmt, list(class_names)
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        self._header_done = False

    def write(self, predictions: Sequence[Prediction]) -> None:
        if not self._header_done:
            self._header()
            self._header_done = True
        for p in predictions:
            if self.fmt == "json":
                self.stream.write(json.dumps({**p.to_dict(), "file": shown_name(p.file)}, ensure_ascii=False) + "\n")
            elif self._csv is not None:
                self._csv.writerow(self._csv_row(p))
            else:
                self.stream.write(self._table_row(p) + "\n")
        self.stream.flush()

    def _header(self) -> None:
        if self._csv is not None:
            probs = [f"p_{c}" for c in self.class_names]
            self._csv.writerow(
                ["file", "label", "confidence", "in_distribution", "ood_score", *probs, "error", "note", "caveat"]
            )
        elif self.fmt == "table":
            self.stream.write(f"{'label':<14} {'conf':>6}  {'probabilities':<40} file\n")

    def _csv_row(self, p: Prediction) -> list[object]:
        probs = [_num(p.probabilities.get(c)) for c in self.class_names]
        conf = _num(p.confidence)
        return [
            p.file,
            p.label or "",
            conf,
            p.in_distribution,
            _num(p.ood_score),
            *probs,
            p.error or "",
            p.note or "",
            p.caveat or "",
        ]

    def _table_row(self, p: Prediction) -> str:
        name = shown_name(p.file)  # one row per file, whatever its name holds
        if p.error:
            return f"{'ERROR':<14} {'':>6}  {shown_name(p.error)[:40]:<40} {name}"
        if not p.in_distribution:
            return f"{'REFUSED':<14} {'':>6}  {(p.note or '')[:40]:<40} {name}"
        top = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:3]
        probs = " ".join(f"{c}={v:.2f}" for c, v in top)
        return f"{p.label:<14} {p.confidence:>6.3f}  {probs:<40} {name}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
