"""Command-line interface: the only place that parses argv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from braintumor import CAM_METHODS, DISCLAIMER, PATH_ERRORS, __version__


def _cmd_data_info(args: argparse.Namespace) -> int:
    from braintumor.data import discover, parse_merge_map

    index = discover(args.data, merge=parse_merge_map(args.merge) if args.merge else None)
    print(index.summary())
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from braintumor.data import check_readable, discover

    index = discover(args.data)
    samples = [s for split in index.splits.values() for s in split]
    good, bad = check_readable(samples, progress=not args.quiet)
    for _path, reason in bad:
        print(f"UNREADABLE {reason}", file=sys.stderr)
    print(f"{len(good)} readable, {len(bad)} unreadable of {len(samples)} files under {args.data}")
    if args.out:
        Path(args.out).write_text("".join(f"{p}\t{r}\n" for p, r in bad), encoding="utf-8", errors=PATH_ERRORS)
    return 1 if bad and args.strict else 0


def _cmd_data_audit(args: argparse.Namespace) -> int:
    from braintumor.data.audit import run_audit

    result = run_audit(
        args.data,
        against=args.against,
        out_dir=args.out,
        threshold=args.threshold,
        examples=args.examples,
        progress=not args.quiet,
        neighbours=args.neighbours,
        zoom_neighbours=args.zoom_neighbours,
    )
    print(result.summary())
    return 0


def _cmd_data_combine(args: argparse.Namespace) -> int:
    from braintumor.data import parse_merge_map
    from braintumor.data.combine import combine_datasets

    merge = parse_merge_map(args.merge) if args.merge else None
    result = combine_datasets(args.sources, args.out, merge=merge, copy=args.copy)
    print(result.summary())
    return 0


def _cmd_data_show_augment(args: argparse.Namespace) -> int:
    from braintumor.data.transforms import AugmentConfig, save_augment_grid

    cfg = AugmentConfig.from_yaml(args.config) if args.config else AugmentConfig()
    save_augment_grid(args.image, args.out, cfg=cfg, n=args.n, image_size=args.image_size, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


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


RELOCATE_HELP = (
    "OLD=NEW: replace the path prefix OLD in the model's recorded training paths (data, exclusions, groups, "
    "weak data) with NEW, for a model trained on another machine or in another folder (repeatable)"
)


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
    from braintumor.training.fit import fit

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.field_names()}
    base = args.config
    if args.resume and base is None and args.out and (Path(args.out) / "config.yaml").is_file():
        base = Path(args.out) / "config.yaml"  # --resume alone goes on with the run's own settings
    cfg = TrainConfig.from_sources(base, **overrides)
    out = fit(cfg)
    print(f"run folder: {out}")
    return 0


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


def _cmd_average(args: argparse.Namespace) -> int:
    from braintumor.training.average import average_models

    written = average_models(args.models, args.weights, args.out)
    print(f"wrote {written}; next: braintumor calibrate --model {args.out} (it is uncalibrated)")
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


def _add_explain_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="class activation map (LayerCAM) overlays of scans, or localisation scores against tumour boxes (--boxes)",
        description="Write one class activation map overlay PNG per scan (same stem, original size), or with "
        "--boxes score how well the maps point at tumour boxes (pointing game, energy in box) beside uniform and "
        "image-centre baselines, with 95 percent bootstrap CIs.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="scans or folders; with --boxes, DATA")
    p.add_argument("--model", default="default", help="checkpoint folder or .safetensors file; 'default' = shipped")
    p.add_argument("--out", type=Path, help="folder for the overlay PNGs (required), or for localization.json")
    p.add_argument(
        "--method",
        choices=CAM_METHODS,
        default=CAM_METHODS[0],
        help="CAM method (LayerCAM points at tumours most often; see MODEL_CARD.md)",
    )
    p.add_argument(
        "--layer",
        metavar="MODULE",
        help="module path of the layer to hook, e.g. blocks.10 (default: the architecture's registered CAM layer)",
    )
    p.add_argument("--target", help="class to explain, by name or index (default: the predicted class)")
    p.add_argument("--colorbar", action="store_true", help="add a colour bar beside each overlay")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap weight in the overlay, 0-1")
    g = p.add_argument_group("localisation scoring")
    g.add_argument("--boxes", type=Path, help="box CSV: image,label,x_min,y_min,x_max,y_max (paths relative to DATA)")
    g.add_argument(
        "--normal-class",
        action="append",
        metavar="CLASS",
        help="a class meaning 'no tumour', repeatable; scans predicted as one are not scored "
        "(default: whichever of notumor, no_tumor, no, normal, healthy the model has)",
    )
    g.add_argument("--tolerance", type=float, help="pointing-game tolerance, pixels of the original scan (default 15)")
    g.add_argument("--limit", type=int, help="score only the first N boxes")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args: argparse.Namespace) -> int:
    return _explain_boxes(args) if args.boxes is not None else _explain_files(args)


def _explainer(args: argparse.Namespace) -> tuple:
    from braintumor.explain import Explainer
    from braintumor.models import load_model
    from braintumor.models.default import resolve_model_path

    model_path = resolve_model_path(args.model)
    return Explainer(load_model(model_path), method=args.method, layer=args.layer), model_path


def _explain_files(args: argparse.Namespace) -> int:
    from braintumor.explain import write_overlays

    if args.out is None:
        raise ValueError("--out DIR is required: the folder the overlay PNGs are written to")
    from braintumor.inference import load_predictor
    from braintumor.inference.inputs import scan_input
    from braintumor.io import Scan

    explainer, model_path = _explainer(args)
    target = args.target
    if target is not None and target.isdigit() and target not in explainer.class_names:
        target = int(target)
    failed = 0
    predictor = load_predictor(model_path)  # the same refusals as `predict` and the web service

    def judge(path: Path, data: bytes, scan: Scan) -> object:  # a Prediction: label, note, confidence
        return predictor.predict_inputs([scan_input(str(path), data, scan)])[0]

    options = {"target": target, "alpha": args.alpha, "colorbar": args.colorbar, "judge": judge}
    results = write_overlays(explainer, args.inputs, args.out, **options)
    for r in results:
        if r.error:
            failed += 1
            print(f"ERROR {r.error}", file=sys.stderr)
        elif r.refused:
            print(f"REFUSED {r.source}: {r.refused}; no overlay written", file=sys.stderr)
        else:
            e, a = r.explanation, r.answer  # the answer `predict` gives: mirror averaging, calibration
            label, confidence = (a.label, a.confidence) if a is not None else (e.predicted_label, e.confidence)
            print(f"{r.source} -> {r.out}  predicted {label} ({confidence:.2f}), map of {e.target_label}")
    return 1 if failed else 0


def _explain_boxes(args: argparse.Namespace) -> int:
    import json

    from braintumor.explain import DEFAULT_TOLERANCE_PX, format_table, localization_report

    if len(args.inputs) != 1:
        raise ValueError("with --boxes give exactly one dataset folder (the root the CSV's image paths start from)")
    if args.target is not None:
        raise ValueError("--target is not used with --boxes: localisation explains each scan's predicted class")
    explainer, model_path = _explainer(args)
    report = localization_report(
        explainer,
        args.inputs[0],
        args.boxes,
        normal=args.normal_class,
        tolerance=DEFAULT_TOLERANCE_PX if args.tolerance is None else args.tolerance,
        limit=args.limit,
        progress=not args.quiet,
    )
    report = {"model": str(model_path), "boxes": str(args.boxes), **report}
    for err in report["errors"]:
        print(f"ERROR {err['error']}", file=sys.stderr)
    print(format_table(report))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "localization.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out / 'localization.json'}")
    return 0


def _add_evaluation_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare", help="several models' figures side by side (evaluation or run folders)")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_OR_EVAL_DIR", help="folders from evaluate or train")
    p.add_argument("--out", type=Path, help="also write the table to FILE.csv or FILE.md")
    p.set_defaults(func=_cmd_compare)


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


def _add_inference_parsers(sub: argparse._SubParsersAction) -> None:
    """`predict`, `export` and `serve` (choices are literal here so `--help` does not import torch)."""
    model_help = "'default' (the shipped model), a run folder, a checkpoint, or an .onnx file"
    p = sub.add_parser("predict", help="classify scans: files, folders or glob patterns")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIRS|GLOBS", help="scans, folders of scans, or patterns")
    p.add_argument("--model", default="default", help=model_help)
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
    p.add_argument("--model", default="default", help=model_help)
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

    p = sub.add_parser("serve", help="run the web service and page (FastAPI, uvicorn)")
    p.add_argument("--model", help=model_help + " (default: $BRAINTUMOR_MODEL, else 'default')")
    p.add_argument("--backend", choices=("torch", "onnx"), help="default: $BRAINTUMOR_BACKEND, else torch")
    p.add_argument("--host", default="127.0.0.1", help="non-loopback hosts need BRAINTUMOR_API_TOKEN")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (each loads the model)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve beyond loopback without a token")
    p.add_argument("--cors-origin", action="append", default=None, help="allow this browser origin (repeatable)")
    p.add_argument("--max-file-mb", type=float, help="per-file upload limit (default 20)")
    p.add_argument("--max-request-mb", type=float, help="per-request upload limit (default 64)")
    p.add_argument("--max-files", type=int, help="files per request (default 16)")
    p.add_argument("--concurrency", type=int, help="requests processed at once per worker (default 2)")
    p.add_argument("--threads", type=int, help="CPU threads for the model per worker (default: one per core)")
    p.add_argument(
        "--max-side", type=int, help="shrink larger scans to this many px on the long side first (default 2048)"
    )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=_cmd_serve)


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
    from braintumor.inference.export import export_with_ood, parity
    from braintumor.inference.ood_fit import fit_ood_on_dataset, fit_ood_on_training_split
    from braintumor.io import read_scan
    from braintumor.models import checkpoint_paths, load_model
    from braintumor.models.default import resolve_model_path

    if args.format == "none" and not (args.ood_from or args.ood_own_split):
        raise ValueError("nothing to do: --format none needs --ood-from DATA or --ood-own-split")
    if args.ood_groups_csv and not args.ood_from:
        raise ValueError("--ood-groups-csv goes with --ood-from DATA (--ood-own-split uses the run's own groups)")
    path = resolve_model_path(args.model)
    loaded = load_model(path)
    if args.ood_from or args.ood_own_split:
        fit_args = {
            "max_per_class": args.ood_max_per_class,
            "batch_size": args.batch_size,
            "progress": not args.quiet,
            "stats_layer": None if args.ood_layer == "none" else args.ood_layer,
        }
        if args.ood_own_split:
            from braintumor.training.calibrate import parse_relocations

            moves = parse_relocations(args.relocate)
            detector = fit_ood_on_training_split(loaded, path, args.ood_percentile, relocate=moves, **fit_args)
        else:
            detector = fit_ood_on_dataset(
                loaded, args.ood_from, args.ood_percentile, groups_csv=args.ood_groups_csv, **fit_args
            )
        for bad in detector.info["unreadable"]:
            print(f"braintumor: warning: left out {bad['file']}: {bad['error']}", file=sys.stderr)
        written = detector.save(path)
        i = detector.info
        print(
            f"OOD check: threshold {detector.threshold:.3f} = {i['percentile']:g}th percentile of {i['n_val']} "
            f"validation scans (fitted on {i['n_train']}); wrote {written[0]} and {written[1]}"
        )
    if args.format == "onnx":
        out = args.out or checkpoint_paths(path)[0].with_suffix(".onnx")
        export_with_ood(loaded, path, out)  # the graph computes the features its OOD check reads
        samples = sorted((Path(__file__).parent / "samples").rglob("*.jpg"))
        diff = parity(loaded, out, [read_scan(p) for p in samples]) if samples else float("nan")
        print(f"wrote {out} (max |p_onnx - p_torch| on {len(samples)} sample scans: {diff:.2e})")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from braintumor.models.default import resolve_model_path
    from braintumor.serve.app import ENV, settings_from_env
    from braintumor.serve.settings import check_exposure

    flags = {
        "model": args.model,
        "backend": args.backend,
        "cors_origins": ",".join(args.cors_origin) if args.cors_origin else None,
        "max_file_bytes": args.max_file_mb,
        "max_request_bytes": args.max_request_mb,
        "max_files": args.max_files,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "max_side": args.max_side,
    }
    # Each uvicorn worker process builds its app from the environment (serve.app.app_from_env).
    os.environ.update({ENV[k]: str(v) for k, v in flags.items() if v is not None})
    settings = settings_from_env()
    check_exposure(args.host, settings, args.insecure_no_auth)
    resolve_model_path(settings.model)  # fail here, with the reason, rather than in every worker
    auth = "bearer token required on /api" if settings.api_token else "no access token (loopback only)"
    print(f"braintumor serve: http://{args.host}:{args.port}/ ({auth}). {DISCLAIMER}", file=sys.stderr)
    uvicorn.run(
        "braintumor.serve.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        server_header=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description=f"Brain-tumour MRI classification toolkit. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"braintumor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    data = sub.add_parser("data", help="inspect datasets: info, check, audit for leaks, combine, show augmentations")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True

    p = dsub.add_parser("info", help="list splits, classes and image counts of a dataset folder")
    p.add_argument("data", type=Path, help="dataset root (class folders, optionally inside split folders)")
    p.add_argument("--merge", help="class-merge map, e.g. 'tumor=glioma,meningioma,pituitary'")
    p.set_defaults(func=_cmd_data_info)

    p = dsub.add_parser("check", help="read every scan once and report the unreadable ones")
    p.add_argument("data", type=Path, help="dataset root")
    p.add_argument("--out", type=Path, help="write 'path<TAB>reason' lines of unreadable files here")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any file is unreadable")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data_check)

    p = dsub.add_parser("audit", help="find duplicates and near-duplicates within and across splits")
    p.add_argument("data", type=Path, help="dataset root with train and test split folders")
    p.add_argument("--against", type=Path, help="audit DATA (as test) against this other dataset (as training)")
    p.add_argument("--out", type=Path, required=True, help="output folder for audit.json and the lists")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="near-duplicate similarity threshold in [0, 1] (higher = stricter); default is calibrated",
    )
    p.add_argument("--examples", type=int, default=12, help="example pairs per kind drawn in examples_*.png")
    p.add_argument(
        "--neighbours",
        type=int,
        default=None,
        help="nearest partners per image registered in the second look that finds cropped and rotated copies "
        "(default 8; 0 skips it, faster, and misses most such copies)",
    )
    p.add_argument(
        "--zoom-neighbours",
        type=int,
        default=None,
        help="nearest partners of each zoomed view of an image also registered, for copies cropped into the head "
        "(default 2; 0: none, about half the matching time, misses most copies cropped by 10 %%; "
        "no effect with --neighbours 0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data_audit)

    p = dsub.add_parser(
        "combine", help="link several datasets into one folder (OUT/Split/class/source/...), to audit and train on"
    )
    p.add_argument("sources", type=Path, nargs="+", help="dataset roots; one without split folders counts as training")
    p.add_argument("--out", type=Path, required=True, help="new folder to create (must not exist or be empty)")
    p.add_argument("--merge", help="class-merge map applied to every source, e.g. 'tumor=glioma,meningioma'")
    p.add_argument("--copy", action="store_true", help="copy files instead of linking them")
    p.set_defaults(func=_cmd_data_combine)

    p = dsub.add_parser("show-augment", help="draw a grid of augmented samples of one scan")
    p.add_argument("image", type=Path, help="one scan (image, DICOM or NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--n", type=int, default=16, help="number of augmented samples (grid cells)")
    p.add_argument("--image-size", type=int, default=224, help="output side in pixels")
    p.add_argument("--config", type=Path, help="YAML file of augmentation settings")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_data_show_augment)

    _add_train_parser(sub)
    _add_calibrate_parser(sub)
    _add_average_parser(sub)
    _add_explain_parser(sub)
    _add_evaluation_parsers(sub)
    _add_inference_parsers(sub)
    return parser


def _tolerant_streams() -> None:
    """Output never fails on a file name that is not valid UTF-8: stdout writes its bytes back unchanged
    (like the lists the commands write), stderr escapes them."""
    for stream, errors in ((sys.stdout, PATH_ERRORS), (sys.stderr, "backslashreplace")):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors if encoding == "utf8" else "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `braintumor` command."""
    from braintumor.io import ScanReadError
    from braintumor.models.pretrained import PretrainedWeightsUnavailable

    _tolerant_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ScanReadError, FileNotFoundError, ValueError, PretrainedWeightsUnavailable) as exc:
        print(f"braintumor: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an --out that is a file, a folder where a file goes, a full disk, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"braintumor: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("braintumor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
