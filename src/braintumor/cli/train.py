"""`braintumor train`, `calibrate` and `average`: make and refine models."""

from __future__ import annotations

import argparse
from pathlib import Path

RELOCATE_HELP = (
    "OLD=NEW: replace the path prefix OLD in the model's recorded training paths (data, exclusions, groups, "
    "weak data) with NEW, for a model trained on another machine or in another folder (repeatable)"
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_train_parser(sub)
    _add_calibrate_parser(sub)
    _add_average_parser(sub)


def _config_help() -> dict[str, str]:
    """Each TrainConfig field's help text: the comment beside it in config.py (one source of truth)."""
    import inspect
    import re

    from braintumor.training.config import TrainConfig

    try:
        source = inspect.getsource(TrainConfig)
    except OSError:
        return {}
    return dict(re.findall(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$", source, flags=re.M))


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    import dataclasses

    from braintumor.training.config import TrainConfig

    p = sub.add_parser("train", help="train a classifier (Lightning; one or many devices)")
    p.add_argument("--config", type=Path, help="YAML file of config fields; flags given here override it")
    helps = _config_help()
    required = {"data", "out"}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        text = helps.get(f.name, "")
        if kind.startswith("dict"):
            continue  # nested settings (augment) come from the YAML file only
        if kind == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            conv = int if kind == "int" else float if kind == "float" else str
            p.add_argument(flag, type=conv, default=None, help=text + (" (required)" if f.name in required else ""))
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from braintumor.training.config import TrainConfig
    from braintumor.training.fit import fit, is_global_zero

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.field_names()}
    base = args.config
    if args.resume and base is None and args.out and (Path(args.out) / "config.yaml").is_file():
        base = Path(args.out) / "config.yaml"  # --resume alone goes on with the run's own settings
    cfg = TrainConfig.from_sources(base, **overrides)
    if cfg.test_dir and Path(cfg.test_dir).is_dir():  # a test folder that cannot be scored fails now, not after
        from braintumor.data import discover
        from braintumor.evaluation.evaluate import test_samples

        test_samples(discover(cfg.test_dir))
    out = fit(cfg)
    if cfg.test_dir and is_global_zero():
        _score_test_dir_once(cfg, out)
    print(f"run folder: {out}")
    return 0


def _score_test_dir_once(cfg, out: Path) -> None:
    """`--test-dir`: score the exported model once on the test folder into OUT/test/ (never used to choose)."""
    from braintumor.evaluation.evaluate import EvaluateOptions, run_evaluation
    from braintumor.evaluation.outputs import console_table

    options = EvaluateOptions(cache_dir=Path(cfg.cache_dir) if cfg.cache_dir else None)
    result = run_evaluation(out, cfg.test_dir, out / "test", options=options)
    print(f"test folder {cfg.test_dir}, scored once (figures in {out / 'test'}):\n{console_table(result)}", flush=True)


def _add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="refit the temperature on the run's validation split, choosing test-time augmentation there",
        description="Rebuilds the validation split the model was trained with (same data, exclusions, duplicate "
        "groups and seed, from its sidecar), scores each test-time augmentation on it, keeps the best macro-F1 "
        "(a tie keeps the cheaper), fits the temperature on that mode's logits and updates the sidecar. Only "
        "validation data is read.",
    )
    p.add_argument("--model", required=True, help="a run folder or checkpoint trained by `braintumor train`")
    p.add_argument("--tta", choices=("auto", "none", "hflip"), default="auto", help="auto: choose on validation")
    p.add_argument("--data", help="the training dataset root, when it moved since training")
    p.add_argument("--relocate", action="append", metavar="OLD=NEW", help=RELOCATE_HELP)
    p.add_argument("--dry-run", action="store_true", help="print the figures, change nothing")
    p.add_argument("--batch-size", type=int, default=32, help="scans per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from braintumor.training.calibrate import calibrate, parse_relocations

    modes = ("none", "hflip") if args.tta == "auto" else (args.tta,)
    result = calibrate(
        args.model,
        modes=modes,
        data=args.data,
        relocate=parse_relocations(args.relocate),
        write=not args.dry_run,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    print(result.summary())
    if not args.dry_run:
        print(
            "next: refit the out-of-distribution check if the test-time augmentation changed "
            f"(braintumor export --model {args.model} --ood-from DATA), then re-export ONNX"
        )
    return 0


def _add_average_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of models fine-tuned from one start (WiSE-FT / model soup)",
        description="Writes the weighted mean of the models' parameters (BatchNorm statistics included) as one "
        "model of the same size. The models must share architecture, classes, input and training split (so "
        "their validation split is unseen by all and `braintumor calibrate` can choose on it). Two models with "
        "--weights 0.3 0.7 give the WiSE-FT interpolation; averaging helps when the models were fine-tuned "
        "from the same weights (e.g. one with --init-from the other), rarely otherwise.",
    )
    p.add_argument("models", nargs="+", help="two or more run folders, checkpoints or 'default'")
    p.add_argument("--weights", type=float, nargs="+", help="one per model, normalised to sum 1 (default: equal)")
    p.add_argument("--out", type=Path, required=True, help="new folder for the averaged model")
    p.set_defaults(func=_cmd_average)


def _cmd_average(args: argparse.Namespace) -> int:
    from braintumor.training.average import average_models

    written = average_models(args.models, args.weights, args.out)
    print(f"wrote {written}; next: braintumor calibrate --model {args.out} (it is uncalibrated)")
    return 0
