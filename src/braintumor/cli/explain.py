"""`braintumor explain`: class activation map overlays, or localisation scores against tumour boxes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from braintumor import CAM_METHODS


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
