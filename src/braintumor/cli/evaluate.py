"""`braintumor evaluate` and `compare`: score models on labelled test folders, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from braintumor import DISCLAIMER
from braintumor.cli.data import CLASS_MAP_HELP


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`evaluate` (score a model on a test folder, leak-aware) and `compare` (models side by side)."""
    p = sub.add_parser("evaluate", help="score a model on a labelled test folder: metrics.json, report.html")
    p.add_argument("--model", default="default", help="checkpoint folder or file, or 'default' for the shipped model")
    p.add_argument("--data", type=Path, required=True, help="test folder of class folders, or a root with a test split")
    p.add_argument("--out", type=Path, required=True, help="output folder (metrics.json, predictions.csv, report.html)")
    p.add_argument(
        "--exclude-leaks-from",
        type=Path,
        metavar="TRAIN_DIR",
        help="audit the test scans against this training folder; report figures on the leak-free subset too",
    )
    p.add_argument("--batch-size", type=int, default=32, help="scans per forward pass (default 32)")
    p.add_argument("--cache-dir", type=Path, help="decode cache folder to reuse between runs (default: temporary)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda when available)")
    p.add_argument("--class-map", metavar="MAP|FILE", help=CLASS_MAP_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare", help="several models' figures side by side (evaluation or run folders)")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_OR_EVAL_DIR", help="folders from evaluate or train")
    p.add_argument("--out", type=Path, help="also write the table to FILE.csv or FILE.md")
    p.set_defaults(func=_cmd_compare)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from braintumor.data import parse_class_map
    from braintumor.evaluation.bootstrap import BootstrapSettings
    from braintumor.evaluation.evaluate import EvaluateOptions, run_evaluation
    from braintumor.evaluation.outputs import console_table

    if args.batch_size < 1 or args.bootstrap < 1:
        raise ValueError("--batch-size and --bootstrap must be at least 1")
    options = EvaluateOptions(
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        bootstrap=BootstrapSettings(n_resamples=args.bootstrap, seed=args.seed),
        workers=args.workers,
        device=args.device,
        progress=not args.quiet,
        class_map=parse_class_map(args.class_map) if args.class_map else None,
    )
    result = run_evaluation(
        args.model, args.data, args.out, exclude_leaks_from=args.exclude_leaks_from, options=options
    )
    print(console_table(result))
    print(f"wrote {args.out}/metrics.json, predictions.csv, report.html")
    print(DISCLAIMER)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from braintumor.evaluation.compare import compare_rows, format_table, write_table

    rows = compare_rows(args.runs)
    print(format_table(rows))
    if args.out:
        print(f"wrote {write_table(rows, args.out)}")
    return 0
