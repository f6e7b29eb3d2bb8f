"""Print how a model does on held-out patients of imported sources, per source, sequence and plane.

    python benchmarks/generalization.py --data IMPORTED [IMPORTED ...] [--model default|PATH ...]
                                        [--heldout FILE | --all-patients] [--backend torch|onnx]
                                        [--draw N_LGG N_IXI]

IMPORTED are folders written by `braintumor data import` (class folders, slices.csv). Only held-out
patients are scored: the `source,patient` lines of --heldout (default: benchmarks/heldout_patients.txt,
drawn once with `--draw`, seeded, and committed, so that no later run trains, tunes or chooses on them).

For every (source, sequence, plane) it prints the slices and patients scored, the accuracy with a 95 %
interval that resamples patients (a patient's slices are not independent), and for tumour slices the
share called "notumor", the failure that matters first. The classifier's answer is counted even where
the out-of-distribution check would refuse it, so every model is scored on the same slices.

Leave-one-source-out: train a model on every source but one (`braintumor train --exclude` with the
left-out source's slices; docs/model-notebook.md has the runs), then score it on every patient of that
source with `--all-patients --data LEFT_OUT`. Those rows say what to expect from a collection no
training run has seen.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from braintumor.data.sources import read_slice_table
from braintumor.inference import load_predictor
from braintumor.io import ScanReadError, read_scan

HELDOUT = Path(__file__).resolve().parent / "heldout_patients.txt"
RESAMPLES = 1000


def draw_heldout(rows: list[dict], counts: dict[str, int], seed: int = 0) -> list[tuple[str, str]]:
    """`counts[source]` patients per source, drawn with a seeded generator from the imported ones."""
    rng = np.random.default_rng(seed)
    chosen = []
    for source, n in counts.items():
        patients = sorted({r["patient"] for r in rows if r["source"] == source})
        if len(patients) < n:
            raise ValueError(f"{source}: {len(patients)} patients imported, {n} asked for")
        chosen += [(source, p) for p in sorted(rng.choice(patients, size=n, replace=False))]
    return chosen


def predict(model: str, backend: str, files: list[Path]) -> tuple[list[str], np.ndarray]:
    """The model's class names and its argmax class per file (-1: unreadable)."""
    predictor = load_predictor(model, backend=backend)
    out = np.full(len(files), -1)
    step = predictor.batch_size
    for start in range(0, len(files), step):
        batch, where = [], []
        for i in range(start, min(start + step, len(files))):
            try:
                batch.append(predictor.pipeline(read_scan(files[i]).as_uint8()).numpy())
                where.append(i)
            except ScanReadError as exc:
                print(f"skipped {files[i]}: {exc.reason}", file=sys.stderr)
        if batch:
            logits, _ = predictor.backend.run(np.stack(batch))
            out[where] = logits.argmax(axis=1)
    return list(predictor.class_names), out


def patient_interval(hits: np.ndarray, patients: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of `hits`, resampling whole patients."""
    ids = np.unique(patients)
    by_patient = [hits[patients == p] for p in ids]
    sums, counts = np.array([h.sum() for h in by_patient]), np.array([len(h) for h in by_patient])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(RESAMPLES, len(ids)))
    means = sums[draws].sum(axis=1) / np.maximum(counts[draws].sum(axis=1), 1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(rows: list[dict], names: list[str], pred: np.ndarray) -> str:
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        for key in ((r["source"], r["sequence"], r["plane"]), (r["source"], "all", "all")):
            groups[key].append(i)
    lines = [f"{'source':<8} {'sequence':<8} {'plane':<9} {'slices':>6} {'patients':>8}  "
             f"{'accuracy [95 % CI]':<24} {'tumour called notumor':<30} recall per class"]  # fmt: skip
    no_tumour = names.index("notumor") if "notumor" in names else None
    for key in sorted(groups):
        idx = np.array(groups[key])
        truth = np.array([names.index(rows[i]["label"]) if rows[i]["label"] in names else -2 for i in idx])
        patients = np.array([rows[i]["patient"] for i in idx])
        hits = (pred[idx] == truth).astype(float)
        lo, hi = patient_interval(hits, patients)
        cell = f"{hits.mean():.3f} [{lo:.3f}, {hi:.3f}]"
        missed = ""
        tumour = np.array([rows[i]["label"] != "notumor" for i in idx])
        if no_tumour is not None and tumour.any():
            called = (pred[idx][tumour] == no_tumour).astype(float)
            mlo, mhi = patient_interval(called, patients[tumour])
            missed = f"{called.mean():.3f} [{mlo:.3f}, {mhi:.3f}] of {int(tumour.sum())}"
        recall = ", ".join(
            f"{names[c]} {hits[truth == c].mean():.3f} ({int((truth == c).sum())})"
            for c in sorted(set(truth))
            if c >= 0
        )
        head = f"{key[0]:<8} {key[1]:<8} {key[2]:<9} {len(idx):>6} {len(set(patients)):>8}"
        lines.append(f"{head}  {cell:<24} {missed:<30} {recall}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="folders written by `braintumor data import`")
    ap.add_argument("--model", nargs="+", default=["default"], help="one or more models, scored on the same slices")
    ap.add_argument("--heldout", type=Path, default=HELDOUT, help="source,patient lines of the held-out patients")
    ap.add_argument(
        "--all-patients",
        action="store_true",
        help="score every patient (leave-one-source-out: a model that never saw --data)",
    )
    ap.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    ap.add_argument(
        "--draw", nargs=2, type=int, metavar=("N_LGG", "N_IXI"), help="draw held-out patients, write --heldout"
    )
    args = ap.parse_args()
    rows = [row for folder in args.data for row in read_slice_table(folder)]
    if args.draw:
        chosen = draw_heldout(rows, {"lgg": args.draw[0], "ixi": args.draw[1]})
        header = "# Test patients of imported sources (issue 24): never train, tune or choose on them. Seed 0.\n"
        lines = "".join(f"{s},{p}\n" for s, p in chosen)
        args.heldout.write_text(header + "source,patient\n" + lines, encoding="utf-8")
        print(f"wrote {len(chosen)} held-out patients to {args.heldout}")
        return 0
    if not args.all_patients:
        with args.heldout.open(encoding="utf-8") as f:
            lines = (line for line in f if not line.startswith("#"))
            held = {(r["source"], r["patient"]) for r in csv.DictReader(lines)}
        rows = [r for r in rows if (r["source"], r["patient"]) in held]
    if not rows:
        print(f"no slice of the patients in {args.heldout} is in {', '.join(map(str, args.data))}", file=sys.stderr)
        return 2
    for model in args.model:
        names, pred = predict(model, args.backend, [r["file"] for r in rows])
        scored = "patients" if args.all_patients else "held-out patients"
        print(f"model {model}: {len(rows)} slices of {len({(r['source'], r['patient']) for r in rows})} {scored}")
        print(table(rows, names, pred))
    return 0


if __name__ == "__main__":
    sys.exit(main())
