"""`braintumor predict` and `export`: classify scans; export a model to ONNX with its OOD check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from braintumor import DISCLAIMER, shown_name
from braintumor.cli.data import CLASS_MAP_HELP
from braintumor.cli.train import RELOCATE_HELP

MODEL_HELP = "'default' (the shipped model), a run folder, a checkpoint, or an .onnx file"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`predict`, `export` and `serve` (choices are literal here so `--help` does not import torch)."""
    p = sub.add_parser("predict", help="classify scans: files, folders or glob patterns")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIRS|GLOBS", help="scans, folders of scans, or patterns")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="json: one object per line")
    p.add_argument("--explain", type=Path, metavar="DIR", help="also write a CAM overlay PNG (LayerCAM) per scan here")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="onnx needs `braintumor export`")
    p.add_argument("--batch-size", type=int, default=32, help="scans per forward pass")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a model to ONNX; fit its out-of-distribution check",
        description="Writes <stem>.onnx (dynamic batch; the preprocessing contract in its metadata) and, with "
        "--ood-from, <stem>.ood.safetensors + <stem>.ood.json beside the checkpoint: a Mahalanobis-distance check "
        "on the penultimate features (plus one layer's channel statistics, --ood-layer), fitted on DATA's train "
        "split, with its threshold at --ood-percentile of the "
        "scores of DATA's val split (or of 15%% of train held out). `predict` and `serve` then refuse scans beyond "
        "the threshold (in_distribution false, no label). --ood-own-split fits it on the model's own "
        "training split and thresholds it on its validation split instead.",
    )
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--format", choices=("onnx", "none"), default="onnx", help="none: only fit the OOD check")
    p.add_argument("--out", type=Path, help="ONNX file to write (default: <checkpoint stem>.onnx beside it)")
    ood = p.add_mutually_exclusive_group()
    ood.add_argument("--ood-from", type=Path, metavar="DATA", help="fit the OOD check on DATA's train (and val) split")
    ood.add_argument(
        "--ood-own-split",
        action="store_true",
        help="fit the OOD check on the model's own training split and threshold it on its validation split "
        "(rebuilt from its training config, as `calibrate` does; leak exclusions included)",
    )
    p.add_argument("--relocate", action="append", metavar="OLD=NEW", help="with --ood-own-split: " + RELOCATE_HELP)
    p.add_argument(
        "--ood-groups-csv",
        type=Path,
        help="with --ood-from and no val split: groups.csv of `braintumor data audit DATA`, so that copies of a "
        "scan are not split between the fitted and the threshold part (which would set the threshold too low)",
    )
    p.add_argument("--class-map", metavar="MAP|FILE", help="with --ood-from: " + CLASS_MAP_HELP)
    p.add_argument("--ood-percentile", type=float, default=99.0, help="threshold percentile of validation scores")
    p.add_argument("--ood-max-per-class", type=int, help="use at most this many scans per class (faster)")
    p.add_argument(
        "--ood-layer",
        default="auto",
        help="also read this layer's channel mean and std (module path); 'auto': the architecture's own "
        "(EfficientNet-Lite: the first stride-16 block), 'none': penultimate features only",
    )
    p.add_argument("--batch-size", type=int, default=32, help="scans per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)


def _cmd_predict(args: argparse.Namespace) -> int:
    import os

    from braintumor.inference import expand_sources, load_predictor
    from braintumor.inference.batch import predict_files
    from braintumor.inference.output import PredictionWriter

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.explain and Path(args.explain).exists() and not Path(args.explain).is_dir():
        raise NotADirectoryError(f"{args.explain}: exists and is not a folder; --explain names the overlay folder")
    files, problems = expand_sources(args.inputs)
    for problem in problems:
        print(f"braintumor: warning: {problem}", file=sys.stderr)
    if not files:
        raise FileNotFoundError("no input files to predict")
    predictor = load_predictor(args.model, backend=args.backend, threads=args.threads, batch_size=args.batch_size)
    if not predictor.ood_available:
        note = "this model has no out-of-distribution check (see `braintumor export --help`)"
        print(f"braintumor: note: {note}", file=sys.stderr)
    writer = PredictionWriter(sys.stdout, args.format, predictor.class_names)
    try:
        s = predict_files(predictor, files, writer, explain_dir=args.explain, progress=not args.quiet)
    except BrokenPipeError:  # the output went into e.g. `head`, which stopped reading: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python's own advice for this case)
        return 0
    done = f"{s.predicted} predicted, {s.refused} refused, {s.errors} unreadable of {len(files)} file(s)"
    for (label, caveat), n in sorted(s.caveats.items()):
        print(f"braintumor: caution: {n} '{label}' answer(s): {caveat}", file=sys.stderr)
    print(f"{done}{f'; overlays in {args.explain}' if args.explain else ''}. {DISCLAIMER}", file=sys.stderr)
    return 1 if s.errors else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from braintumor.data import parse_class_map
    from braintumor.inference.export import export_checked
    from braintumor.models import checkpoint_paths, load_model
    from braintumor.models.default import resolve_model_path
    from braintumor.training.calibrate import parse_relocations
    from braintumor.training.ood_fit import fit_and_save

    if args.format == "none" and not (args.ood_from or args.ood_own_split):
        raise ValueError("nothing to do: --format none needs --ood-from DATA or --ood-own-split")
    path = resolve_model_path(args.model)
    loaded = load_model(path)
    if args.ood_from or args.ood_own_split or args.ood_groups_csv or args.class_map:  # refused there without data
        report = fit_and_save(
            loaded,
            path,
            args.ood_percentile,
            data=args.ood_from,
            groups_csv=args.ood_groups_csv,
            class_map=parse_class_map(args.class_map) if args.class_map else None,
            relocate=parse_relocations(args.relocate),
            max_per_class=args.ood_max_per_class,
            batch_size=args.batch_size,
            progress=not args.quiet,
            stats_layer=None if args.ood_layer == "none" else args.ood_layer,
        )
        for bad in report.detector.info["unreadable"]:
            print(f"braintumor: warning: left out {shown_name(bad['file'])}: {bad['error']}", file=sys.stderr)
        print(report.summary())
    if args.format == "onnx":
        out = args.out or checkpoint_paths(path)[0].with_suffix(".onnx")
        print(export_checked(loaded, path, out).summary())  # the graph computes the features its OOD check reads
    return 0
