"""Overlays for a list of scan files (what `braintumor explain FILES --out DIR` does): one PNG per input."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from braintumor.explain.cam import Explainer, Explanation
from braintumor.explain.overlay import overlay_png
from braintumor.io import SCAN_SUFFIXES, Scan, ScanReadError, find_scans, read_scan
from braintumor.io.source import load_bytes


@dataclass(frozen=True)
class OverlayResult:
    """What happened to one input: the PNG written and its explanation, the error that stopped it, or why
    the predictor refused the scan (not a brain MRI: colour photo, blank, out-of-distribution)."""

    source: Path
    out: Path | None
    explanation: Explanation | None
    error: str | None
    refused: str | None = None
    answer: Any = None  # the predictor's answer (label, confidence) when a `judge` gave one


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the scan files inside them (recursively, sorted).

    Raises:
        ValueError: a folder holds no scan files (it would otherwise be skipped without a word).
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found, _ = find_scans(item)  # as `predict` does: unreadable entries are kept, to be reported
            if not found:
                raise ValueError(f"{item}: folder holds no scan files ({', '.join(SCAN_SUFFIXES)})")
            files += found
        else:
            files.append(item)  # a missing file is reported by the reader, per file
    return files


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SCAN_SUFFIXES, key=len, reverse=True):  # ".nii.gz" before ".gz"-less names
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_paths(files: Sequence[Path], out_dir: Path) -> dict[Path, Path]:
    """Input -> ``out_dir/<stem>.png``.

    Raises:
        ValueError: two inputs share a stem, or an output would overwrite its own input.
    """
    outs: dict[Path, Path] = {}
    seen: dict[Path, Path] = {}
    for f in files:
        target = out_dir / f"{_stem(f)}.png"
        if target in seen:
            raise ValueError(f"{seen[target]} and {f} would both be written to {target}; explain them in separate runs")
        if target.exists() and f.exists() and target.resolve() == f.resolve():
            raise ValueError(f"{f}: the overlay would overwrite the input; choose another --out folder")
        seen[target] = f
        outs[f] = target
    return outs


def write_overlays(
    explainer: Explainer,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    target: int | str | None = None,
    alpha: float = 0.4,
    colorbar: bool = False,
    judge: Callable[[Path, bytes, Scan], Any] | None = None,
) -> Iterator[OverlayResult]:
    """Explain each scan and write its overlay PNG, yielding one result per input as it goes.

    An unreadable file gives a result with `error` set (naming the file and the reason) and the run goes on.
    `judge(path, data, scan)` (the CLI passes the same model's predictor; `data` is the file's bytes, `scan`
    what they decoded to, so nothing is read twice) gives the answer users are told: an object
    with `label` (None when refused: colour photo, blank, out-of-distribution), `note` and `confidence`.
    A refused scan gets `refused` and no overlay, as in the web service, since a map of an image that is
    not a brain MRI would look like an answer; otherwise, without a `target`, the map explains that
    label (the explainer's own single view may rank the classes differently from the answer).

    Raises:
        ValueError: bad target class, clashing output names, or an empty folder (before any work is done).
    """
    explainer.class_index(target)  # fail on a bad class before the first file
    files = expand_inputs(inputs)
    outs = output_paths(files, Path(out_dir))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            data = load_bytes(f, str(f))
            scan = read_scan(data, name=str(f))
        except ScanReadError as exc:
            yield OverlayResult(f, None, None, str(exc))
            continue
        answer = judge(f, data, scan) if judge is not None else None
        if answer is not None and answer.label is None:
            yield OverlayResult(f, None, None, None, refused=answer.note, answer=answer)
            continue
        shown = target if target is not None or answer is None else answer.label
        exp = explainer.explain(scan, target=shown)
        outs[f].write_bytes(overlay_png(scan, exp.cam, alpha=alpha, colorbar=colorbar))
        yield OverlayResult(f, outs[f], exp, None, answer=answer)
