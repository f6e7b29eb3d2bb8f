"""Print Grad-CAM localisation of a model on the tumour-box scans of its own validation split.

    python benchmarks/localization_validation.py [--model default|PATH] [--data DIR] [--boxes CSV] [--out DIR]

A model trained on figshare scans cannot be scored on all of them: it has seen most. Its validation
split, rebuilt from the training config in its sidecar exactly as `braintumor calibrate` rebuilds it,
holds scans it never trained on. This keeps the rows of the box CSV (default: DIR/tumor_boxes.csv)
whose scan is one of those validation scans (matched by real path, so a combined tree of links works)
and runs `braintumor explain --boxes` on them: pointing game and energy in the box, beside uniform and
image-centre maps, with bootstrap CIs.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

from braintumor.cli import main as cli_main
from braintumor.models import load_model
from braintumor.models.default import resolve_model_path
from braintumor.training.calibrate import rebuilt_split

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "figshare-cheng-3064"


def validation_boxes(model: str, data: Path, boxes: Path, out_csv: Path) -> int:
    """Write the rows of `boxes` whose scan is in the model's validation split; returns how many."""
    path = resolve_model_path(model)
    loaded = load_model(path)
    with rebuilt_split(loaded, path, progress=False) as (prepared, _):
        val = {s.path.resolve() for s in prepared.val}
    with boxes.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if (data / r["image"]).resolve() in val]
    with out_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(kept)
    print(f"{len(kept)} of {len(rows)} boxes belong to scans of the model's validation split ({len(val)} scans)")
    return len(kept)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder the box CSV's paths start from")
    ap.add_argument("--boxes", type=Path, help="box CSV (default: DATA/tumor_boxes.csv)")
    ap.add_argument("--out", type=Path, help="folder for localization.json and the filtered box CSV")
    args = ap.parse_args()
    boxes = args.boxes or args.data / "tumor_boxes.csv"
    if not boxes.is_file():
        print(f"{boxes}: no box CSV (pass --data or --boxes)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="braintumor-loc-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        subset = out / "validation_boxes.csv"
        if not validation_boxes(args.model, args.data, boxes, subset):
            print("no box belongs to a validation scan: nothing to score", file=sys.stderr)
            return 2
        return cli_main(
            ["explain", "--model", args.model, "--boxes", str(subset), str(args.data), "--out", str(out), "--quiet"]
        )


if __name__ == "__main__":
    sys.exit(main())
