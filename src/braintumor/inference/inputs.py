"""One input of a prediction: a scan read from a path or uploaded bytes, or the reason it cannot be used.

Reading never raises for a bad file: the CLI and the service report one error per file and go on with
the others. The colour-photo gate needs the file's colour channels, which `Scan` (grayscale) no longer
has, so it runs here on the raw bytes, which are read once.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2

from braintumor import shown_name
from braintumor.inference.gate import colour_refusal
from braintumor.io import SCAN_SUFFIXES, Scan, ScanReadError, find_scans, read_scan
from braintumor.io.images import PIL_FORMATS
from braintumor.io.source import load_bytes

ACCEPTED_FORMATS = tuple(s.lstrip(".") for s in SCAN_SUFFIXES)  # file name endings read_input knows


@dataclass(frozen=True)
class ScanInput:
    """A named input: the scan, or why it cannot be read (`error`), or why it is refused (`refusal`)."""

    name: str
    scan: Scan | None = None
    error: str | None = None
    refusal: str | None = None


def read_input(source: str | Path | bytes, *, name: str | None = None, max_side: int | None = None) -> ScanInput:
    """Read one scan (middle slice of a volume) and run the colour gate; bad files give `error`, never raise.

    `max_side` bounds memory where many files arrive at once (the web service): a scan whose longer side
    exceeds it is shrunk to it after decoding (area interpolation), before anything else is done with it.
    The model sees a few hundred pixels, so predictions barely move; maps are then drawn at that size.
    """
    label = name if name is not None else ("<bytes>" if isinstance(source, bytes) else str(source))
    try:
        data = load_bytes(source, label)
        scan = read_scan(data, name=label)
    except ScanReadError as exc:
        return ScanInput(label, error=exc.reason)
    return scan_input(label, data, scan, max_side=max_side)


def scan_input(label: str, data: bytes, scan: Scan, *, max_side: int | None = None) -> ScanInput:
    """The input for a scan already decoded from `data` (its file's bytes), as `read_input` makes it."""
    if max_side is not None:
        scan = fit_side(scan, max_side)
    # only image files carry colour channels; a DICOM's preamble may hold a TIFF header Pillow would misread
    return ScanInput(label, scan, refusal=colour_refusal(data) if scan.format in PIL_FORMATS else None)


def fit_side(scan: Scan, max_side: int) -> Scan:
    """`scan` shrunk (area interpolation, dtype kept) so that its longer side is at most `max_side` px.

    The original size is kept in `extra["original_shape"]` and the pixel spacing is scaled with the pixels.
    """
    h, w = scan.shape
    if max(h, w) <= max_side:
        return scan
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pixels = cv2.resize(scan.pixels, size, interpolation=cv2.INTER_AREA)
    spacing = None if scan.spacing is None else (scan.spacing[0] * h / size[1], scan.spacing[1] * w / size[0])
    extra = {**scan.extra, "original_shape": (h, w)}
    return dataclasses.replace(scan, pixels=pixels, spacing=spacing, extra=extra)


def expand_sources(specs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files named by FILES, DIRS and GLOBS, in order and without repeats, plus one message per problem.

    A file is taken as given (reading it reports any problem); a folder gives every scan file below it
    (by suffix, or by content for DICOM files without one); a glob pattern gives its matches. Returned
    messages name the patterns and folders that gave nothing and each file inside a folder that was
    left out, so nothing is skipped silently.
    """
    files: list[Path] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found, others = find_scans(path, sniff_content=True)  # DICOM exports often have no suffix
            files += found
            problems += [f"{shown_name(str(o))}: left out: not a scan file (by name and content)" for o in others]
            if not found:
                problems.append(f"{spec}: folder holds no scan files")
        elif path.exists() or not glob.has_magic(spec):
            files.append(path)  # a missing file is reported by read_input, with the others
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                problems.append(f"{spec}: no file matches this pattern")
            files += [Path(m) for m in matches if not Path(m).is_dir()]
    return list(dict.fromkeys(files)), problems
