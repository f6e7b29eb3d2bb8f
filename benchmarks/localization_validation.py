"""Print CAM localisation of a model on tumour-box scans of its own split: validation to report, training to choose.

    python benchmarks/localization_validation.py [--model default|PATH] [--data DIR] [--boxes CSV] [--out DIR]
        [--split val|train] [--per-class N] [--methods layercam,gradcam] [--layers blocks.4,head]

A model trained on figshare scans cannot be scored on all of them: it has seen most. Its validation
split, rebuilt from the training config in its sidecar exactly as `braintumor calibrate` rebuilds it,
holds scans it never trained on. This keeps the rows of the box CSV (default: DIR/tumor_boxes.csv)
whose scan is one of those validation scans (matched by real path, so a combined tree of links works)
and runs `braintumor explain --boxes` on them: pointing game and energy in the box, beside uniform and
image-centre maps, with bootstrap CIs.

Choosing the CAM method or layer on those validation scans and then reporting them would score the
choice on the scans it was made on. `--split train --per-class 100` instead draws a stratified sample
(seed 0) of the model's *training* scans to choose on; `--methods` and `--layers` score every pair.
The shipped model's LayerCAM on `blocks.4` was chosen that way (docs/model-notebook.md, "Where it looks").
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from pathlib import Path

from braintumor.cli import main as cli_main
from braintumor.cli.train import RELOCATE_HELP
from braintumor.models import load_model
from braintumor.models.default import resolve_model_path
from braintumor.training.calibrate import parse_relocations, rebuilt_split

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "figshare-cheng-3064"


def split_boxes(
    model: str,
    data: Path,
    boxes: Path,
    out_csv: Path,
    *,
    split: str = "val",
    per_class: int | None = None,
    relocate: dict[str, str] | None = None,
) -> int:
    """Write the rows of `boxes` whose scan is in the model's `split` ("val" or "train"); returns how many.

    With `per_class`, keep a random sample (seed 0) of at most that many rows per label.
    """
    path = resolve_model_path(model)
    loaded = load_model(path)
    with rebuilt_split(loaded, path, relocate=relocate, progress=False) as (prepared, _):
        chosen = {s.path.resolve() for s in (prepared.val if split == "val" else prepared.train)}
    with boxes.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if (data / r["image"]).resolve() in chosen]
    if per_class is not None:
        rng = random.Random(0)
        by_label: dict[str, list[dict]] = {}
        for r in kept:
            by_label.setdefault(r["label"], []).append(r)
        kept = [
            r for label in sorted(by_label) for r in rng.sample(by_label[label], min(per_class, len(by_label[label])))
        ]
    with out_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(kept)
    print(f"{len(kept)} of {len(rows)} boxes belong to scans of the model's {split} split ({len(chosen)} scans)")
    return len(kept)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder the box CSV's paths start from")
    ap.add_argument("--boxes", type=Path, help="box CSV (default: DATA/tumor_boxes.csv)")
    ap.add_argument("--out", type=Path, help="folder for localization.json and the filtered box CSV")
    ap.add_argument("--split", choices=("val", "train"), default="val", help="val to report, train to choose on")
    ap.add_argument("--per-class", type=int, help="score a random sample (seed 0) of at most N scans per label")
    ap.add_argument("--methods", default="", help="comma-separated CAM methods (default: explain's default)")
    ap.add_argument("--layers", default="", help="comma-separated module paths (default: the registered layer)")
    ap.add_argument("--relocate", action="append", metavar="OLD=NEW", help=RELOCATE_HELP)
    args = ap.parse_args()
    boxes = args.boxes or args.data / "tumor_boxes.csv"
    if not boxes.is_file():
        print(f"{boxes}: no box CSV (pass --data or --boxes)", file=sys.stderr)
        return 2
    methods = [m for m in args.methods.split(",") if m] or [None]
    layers = [ly for ly in args.layers.split(",") if ly] or [None]
    with tempfile.TemporaryDirectory(prefix="braintumor-loc-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        subset = out / f"{args.split}_boxes.csv"
        try:
            moves = parse_relocations(args.relocate)
            n = split_boxes(
                args.model, args.data, boxes, subset, split=args.split, per_class=args.per_class, relocate=moves
            )
        except (FileNotFoundError, ValueError) as exc:
            print(f"localization_validation: {exc}", file=sys.stderr)
            return 2
        if not n:
            print(f"no box belongs to a {args.split} scan: nothing to score", file=sys.stderr)
            return 2
        rc = 0
        for method in methods:
            for layer in layers:
                extra = (["--method", method] if method else []) + (["--layer", layer] if layer else [])
                where = out / f"{method or 'default'}_{layer or 'default'}" if len(methods) * len(layers) > 1 else out
                base = ["explain", "--model", args.model, "--boxes", str(subset), str(args.data), "--quiet"]
                rc = max(rc, cli_main([*base, *extra, "--out", str(where)]))
        return rc


if __name__ == "__main__":
    sys.exit(main())
