"""What every importer shares: the slice rules (head, tumour area, spacing) and the files it writes."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor import PATH_ERRORS, shown_name

CSV_FIELDS = ("path", "source", "patient", "sequence", "plane", "slice_index", "tumour_area", "label")


def read_slice_table(folder: str | Path) -> list[dict]:
    """The rows of an import's `slices.csv` (fields `CSV_FIELDS`), each with `file`: the slice's absolute path.

    Raises:
        FileNotFoundError: `folder` was not written by `braintumor data import`.
    """
    table = Path(folder) / "slices.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{folder}: no slices.csv (write it with `braintumor data import`)")
    with table.open(newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
        return [{**row, "file": Path(folder) / row["path"]} for row in csv.DictReader(f)]


@dataclass(frozen=True)
class SliceOptions:
    """Which slices an importer keeps, and how it labels them."""

    min_tumour_px: int = 100  # a mask area (px) from which a slice is "tumour"; 1 to min-1 px: left out
    min_head: float = 0.15  # share of the slice the head must cover; less (the top of the skull, padding): skipped
    every: int = 1  # keep every k-th slice of a series (adjacent slices are near-copies): 1-10
    tumour_label: str = "glioma"  # the class of a slice whose mask reaches min_tumour_px
    normal_label: str = "notumor"  # the class of a slice of a patient's series with an empty mask
    normal_every: int = 1  # of those tumour-free slices keep every k-th (they outnumber tumour slices): 1-10

    def __post_init__(self) -> None:
        if self.min_tumour_px < 1 or not 0 <= self.min_head < 1 or not 1 <= self.every <= 10:
            raise ValueError("min_tumour_px >= 1, min_head in [0, 1) and every in 1-10 are needed")
        if not 1 <= self.normal_every <= 10:
            raise ValueError("normal_every must be in 1-10")

    def label(self, tumour_area: int | None, default: str | None = None) -> str | None:
        """The slice's class from its mask area; None: between empty and `min_tumour_px`, left out."""
        if tumour_area is None:
            return default
        if tumour_area >= self.min_tumour_px:
            return self.tumour_label
        return self.normal_label if tumour_area == 0 else None


def head_share(pixels: np.ndarray) -> float:
    """Share of the slice brighter than a tenth of its 99th percentile: how much of it is head."""
    high = float(np.percentile(pixels, 99))
    return float((pixels > 0.1 * high).mean()) if high > 0 else 0.0


def to_uint8(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Window [low, high] (e.g. a volume's 0.5th and 99.5th percentiles) onto 0-255."""
    scaled = (pixels.astype(np.float32) - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


@dataclass
class ImportResult:
    """What an import wrote and what it left out, with the reason for each skipped input."""

    out: Path
    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> slices

    def skip(self, reason: str, n: int = 1) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + n

    def problem(self, path: Path | str, reason: str) -> None:
        self.problems.append((str(path), reason))

    def add(
        self,
        pixels: np.ndarray,
        *,
        source: str,
        patient: str,
        sequence: str,
        plane: str,
        index: int,
        tumour_area: int | None,
        label: str,
        series: str | None = None,
    ) -> None:
        """Write one slice as OUT/<label>/<name>.png and record it.

        `series` (a volume's file name) names the file instead of patient and sequence, for sources where one
        patient may have two volumes of a sequence.
        """
        name = f"{source}_{series or f'{patient}_{sequence}'}_{plane}_{index:03d}.png"
        rel = Path(label) / name
        (self.out / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(self.out / rel)
        self.rows.append(
            {
                "path": rel.as_posix(),
                "source": source,
                "patient": patient,
                "sequence": sequence,
                "plane": plane,
                "slice_index": index,
                "tumour_area": "" if tumour_area is None else tumour_area,
                "label": label,
            }
        )

    def write(self) -> ImportResult:
        """slices.csv, groups.csv (one group per source and patient) and problems.txt."""
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "slices.csv").open("w", newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        with (self.out / "groups.csv").open("w", newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
            writer = csv.writer(f)
            writer.writerow(["path", "group"])
            writer.writerows([r["path"], f"{r['source']}:{r['patient']}"] for r in self.rows)
        (self.out / "problems.txt").write_text(
            "".join(f"{p}\t{r}\n" for p, r in self.problems), encoding="utf-8", errors=PATH_ERRORS
        )
        return self

    def summary(self) -> str:
        counts: dict[tuple[str, str], int] = {}
        for r in self.rows:
            counts[(r["label"], r["sequence"])] = counts.get((r["label"], r["sequence"]), 0) + 1
        patients = len({(r["source"], r["patient"]) for r in self.rows})
        lines = [f"{len(self.rows)} slices of {patients} patients in {self.out}"]
        lines += [f"  {label:<10} {seq:<6} {n}" for (label, seq), n in sorted(counts.items())]
        lines += [f"  left out: {n} slices ({reason})" for reason, n in sorted(self.left_out.items())]
        lines += [f"  skipped {shown_name(p)}: {r}" for p, r in self.problems]
        return "\n".join(lines)
