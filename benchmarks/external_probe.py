"""Print how often the model misses tumours on scans from a source it never trained on.

    python benchmarks/external_probe.py [--model default|PATH ...] [--data DIR] [--against DIR ...]
                                        [--backend torch|onnx] [--list-misses N] [--write-train-half DIR]

DATA is a tumour / no-tumour set laid out as `yes/` and `no/` folders (default: N. Chakrabarty's
"Brain MRI Images for Brain Tumor Detection" in ../shared/data/chakrabarty-253). Its tumour types
are not labelled, so the question asked is the one that matters first to a reader of a scan: is a
tumour scan called "notumor"? Its scans come from other hospitals and sequences (many T2-weighted)
than most of the 4-class training data.

Before scoring, the project's duplicate audit (`braintumor data audit DATA --against OTHER`) is run
against every `--against` dataset (default: the Nickparvar and figshare sets the shipped model learnt
from, whole, test splits included): a scan with an exact copy, a re-encoded or resized copy, a
mirror image or a near-identical slice there is left out, and copies inside DATA count once (one
scan per duplicate group). What remains is new to the model. A model trained with coarse labels
(`weak_data` in its config, e.g. half of these very scans) has that folder audited too, so every
model named is scored only on scans none of them saw.

`--write-train-half DIR` copies a seeded half of the new tumour scans to DIR/yes/ and stops: train
on it with `--weak-data DIR --weak-labels yes=glioma,meningioma,pituitary`, then probe the rest.

Printed: per folder, the scans kept and how the classifier labels them (its answer even where the
out-of-distribution check would refuse, so every model is scored on the same scans), the share of
tumour scans called "notumor" with a Wilson 95 % interval, and how many the OOD check refuses.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from braintumor.cli.train import RELOCATE_HELP
from braintumor.data.audit import run_audit
from braintumor.inference import load_predictor
from braintumor.io import ScanReadError, read_scan
from braintumor.models import read_metadata
from braintumor.models.default import resolve_model_path
from braintumor.models.head import softmax
from braintumor.training.calibrate import parse_relocations, relocated

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = SHARED / "chakrabarty-253"
DEFAULT_AGAINST = [SHARED / "nickparvar-7023", SHARED / "figshare-cheng-3064"]


def new_scans(data: Path, against: list[Path]) -> list[str]:
    """DATA-relative paths of scans with no duplicate in any `against` set, one per duplicate group."""
    leaking: set[str] = set()
    groups: dict[str, int] = {}
    for other in against:
        result = run_audit(data, against=other, examples=0, progress=False)
        leaking.update(result.test_leaking)
        groups = groups or result.groups  # within-DATA pairs are the same in every audit
        print(f"audit against {other}: {len(result.test_leaking)} of {len(result.groups)} scans have a duplicate there")
    kept, seen = [], set()
    for rel in sorted(groups):
        if rel in leaking or groups[rel] in seen:
            continue
        seen.add(groups[rel])
        kept.append(rel)
    return kept


def weak_folders(models: list[str], relocate: dict[str, str] | None = None) -> list[Path]:
    """The coarse-label folders the models trained on (their config's weak_data); they must still exist."""
    folders = []
    for model in models:
        weak = (read_metadata(resolve_model_path(model)).get("config") or {}).get("weak_data")
        if not weak:
            continue
        weak = relocated(weak, relocate or {})
        if not Path(weak).is_dir():
            raise FileNotFoundError(
                f"{model} trained on weak_data {weak}, which is not here: its seen scans are unknown "
                "(if it moved, pass --relocate OLD=NEW)"
            )
        folders.append(Path(weak))
    return folders


def write_train_half(data: Path, kept: list[str], out: Path, seed: int) -> int:
    """Copy a seeded half of the new tumour scans to OUT/yes/ (for weak-label training); the rest stays a probe."""
    tumour = [rel for rel in kept if rel.split("/")[0] == "yes"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(tumour, size=len(tumour) // 2, replace=False).tolist())
    (out / "yes").mkdir(parents=True, exist_ok=True)
    for rel in chosen:
        shutil.copy2(data / rel, out / "yes" / Path(rel).name)
    print(f"copied {len(chosen)} of {len(tumour)} new tumour scans to {out / 'yes'} (seed {seed})")
    return 0


def score(model: str, args: argparse.Namespace, kept: list[str]) -> int:
    """Print one model's table on the kept scans; 2 if the model has no 'notumor' class."""
    predictor = load_predictor(model, backend=args.backend)
    names = predictor.class_names
    if "notumor" not in names:
        print(f"the model's classes {names} have no 'notumor'", file=sys.stderr)
        return 2
    no_tumour = names.index("notumor")
    print(f"model {model} ({', '.join(names)}); backend {args.backend}")
    print(f"{'folder':<6} {'new scans':>9}  {'called notumor':>15}  {'95 % CI':>15}  {'OOD refused':>11}  labels")
    for folder in ("yes", "no"):
        paths = [args.data / rel for rel in kept if rel.split("/")[0] == folder]
        rows = []
        for path in paths:
            try:
                rows.append((path, predictor.pipeline(read_scan(path).as_uint8()).numpy()))
            except ScanReadError as exc:
                print(f"skipped {path}: {exc.reason}", file=sys.stderr)
        if not rows:
            continue
        preds, p_no, refused = [], [], []
        step = predictor.batch_size
        for start in range(0, len(rows), step):
            logits, features = predictor.backend.run(np.stack([x for _, x in rows[start : start + step]]))
            probs = softmax(logits, predictor.temperature)
            preds.append(logits.argmax(axis=1))
            p_no.append(probs[:, no_tumour])
            if predictor.ood is not None:
                refused.append(~predictor.ood.in_distribution(features)[1])
        pred, p_no = np.concatenate(preds), np.concatenate(p_no)
        n, k = len(pred), int((pred == no_tumour).sum())
        lo, hi = binomtest(k, n).proportion_ci(method="wilson")  # sound at small n and near 0 or 1
        ood = f"{int(np.concatenate(refused).sum()):>11d}" if refused else f"{'n/a':>11}"
        labels = ", ".join(f"{names[c]} {m}" for c, m in Counter(pred.tolist()).most_common())
        print(f"{folder:<6} {n:>9d}  {k:>4d} = {k / n:>7.1%}  [{lo:.3f}, {hi:.3f}]  {ood}  {labels}")
        if folder == "yes" and args.list_misses:
            order = np.argsort(-p_no)
            for i in order[: args.list_misses]:
                if pred[i] == no_tumour:
                    print(f"    missed {rows[i][0]}  p(notumor) {p_no[i]:.3f} (temperature-scaled)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["default"], help="one or more models, scored on the same scans")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with yes/ and no/ sub-folders")
    ap.add_argument("--against", type=Path, nargs="*", default=DEFAULT_AGAINST, help="sets the model learnt from")
    ap.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    ap.add_argument("--list-misses", type=int, default=0, help="print the N most confident misses")
    ap.add_argument("--write-train-half", type=Path, help="copy half the new tumour scans here for training, stop")
    ap.add_argument("--seed", type=int, default=0, help="seed of --write-train-half")
    ap.add_argument("--relocate", action="append", metavar="OLD=NEW", help=RELOCATE_HELP)
    args = ap.parse_args()
    for folder in [args.data, *args.against]:
        if not folder.is_dir():
            print(f"{folder}: not found; pass --data/--against (see the docstring)", file=sys.stderr)
            return 2
    try:
        trained = [] if args.write_train_half else weak_folders(args.model, parse_relocations(args.relocate))
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2

    kept = new_scans(args.data, list(args.against) + trained)
    if args.write_train_half:
        return write_train_half(args.data, kept, args.write_train_half, args.seed)
    for model in args.model:
        if score(model, args, kept) != 0:
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
