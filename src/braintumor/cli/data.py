"""`braintumor data ...`: inspect, check, audit, combine datasets; draw augmentations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from braintumor import PATH_ERRORS

CLASS_MAP_HELP = (
    "folder=class pairs for class folders named otherwise than the classes, e.g. "
    "'glioma_tumor=glioma,no_tumor=notumor', or a file of such lines"
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect datasets: info, check, audit for leaks, combine, show augmentations")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True

    p = dsub.add_parser("info", help="list splits, classes and image counts of a dataset folder")
    p.add_argument("data", type=Path, help="dataset root (class folders, optionally inside split folders)")
    p.add_argument("--merge", help="class-merge map, e.g. 'tumor=glioma,meningioma,pituitary'")
    p.add_argument("--class-map", metavar="MAP|FILE", help=CLASS_MAP_HELP)
    p.set_defaults(func=_cmd_info)

    p = dsub.add_parser("check", help="read every scan once and report the unreadable ones")
    p.add_argument("data", type=Path, help="dataset root")
    p.add_argument("--out", type=Path, help="write 'path<TAB>reason' lines of unreadable files here")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any file is unreadable")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)

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
    p.set_defaults(func=_cmd_audit)

    p = dsub.add_parser(
        "combine", help="link several datasets into one folder (OUT/Split/class/source/...), to audit and train on"
    )
    p.add_argument("sources", type=Path, nargs="+", help="dataset roots; one without split folders counts as training")
    p.add_argument("--out", type=Path, required=True, help="new folder to create (must not exist or be empty)")
    p.add_argument("--merge", help="class-merge map applied to every source, e.g. 'tumor=glioma,meningioma'")
    p.add_argument("--class-map", metavar="MAP|FILE", help=CLASS_MAP_HELP + "; applied to every source")
    p.add_argument("--copy", action="store_true", help="copy files instead of linking them")
    p.set_defaults(func=_cmd_combine)

    p = dsub.add_parser(
        "import",
        help="turn volumes or multi-channel slices into class folders of 2-D slices, with slices.csv and groups.csv",
        description="Writes OUT/<class>/<source>_<patient>_<sequence>_<plane>_<index>.png, slices.csv (source, "
        "patient, sequence, plane, slice index, tumour area, label), groups.csv (one group per patient, for "
        "`train --groups-csv`) and problems.txt (inputs skipped, and why). --layout lgg reads the TCGA "
        "lower-grade glioma TIFFs (channels pre-contrast T1, FLAIR, post-contrast T1; FLAIR masks); --layout "
        "volumes reads NIfTI volumes and reslices them in the axial, coronal and sagittal planes.",
    )
    p.add_argument("source_dir", type=Path, metavar="SOURCE", help="the folder to import")
    p.add_argument("--layout", choices=("lgg", "volumes"), required=True, help="how SOURCE is organised")
    p.add_argument("--out", type=Path, required=True, help="output folder (class folders and the CSVs)")
    p.add_argument("--source", help="source name written in file names and slices.csv (default: the layout)")
    p.add_argument("--label", help="volumes: the class of every slice when there are no masks, e.g. notumor")
    p.add_argument("--sequence", help="volumes: the sequence of every volume (default: read from file names)")
    p.add_argument("--mask-suffix", help="volumes: masks are the volume's file name with this before .nii")
    p.add_argument("--planes", default="axial,coronal,sagittal", help="volumes: planes to slice (comma-separated)")
    p.add_argument("--every", type=int, default=1, help="keep every k-th slice (adjacent slices are near-copies)")
    p.add_argument(
        "--normal-every",
        type=int,
        default=1,
        help="of a masked series' tumour-free slices keep every k-th (after --every)",
    )
    p.add_argument("--min-tumour-px", type=int, default=100, help="mask area of a tumour slice; smaller: left out")
    p.add_argument("--min-head", type=float, default=0.15, help="share of the slice the head must cover")
    p.add_argument("--tumour-label", default="glioma", help="class of slices whose mask reaches --min-tumour-px")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_import)

    p = dsub.add_parser("show-augment", help="draw a grid of augmented samples of one scan")
    p.add_argument("image", type=Path, help="one scan (image, DICOM or NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--n", type=int, default=16, help="number of augmented samples (grid cells)")
    p.add_argument("--image-size", type=int, default=224, help="output side in pixels")
    p.add_argument("--config", type=Path, help="YAML file of augmentation settings")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_show_augment)


def _cmd_info(args: argparse.Namespace) -> int:
    from braintumor.data import class_mapping, discover

    index = discover(args.data, merge=class_mapping(args.class_map, args.merge))
    print(index.summary())
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
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


def _cmd_audit(args: argparse.Namespace) -> int:
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


def _cmd_combine(args: argparse.Namespace) -> int:
    from braintumor.data import class_mapping
    from braintumor.data.combine import combine_datasets

    merge = class_mapping(args.class_map, args.merge)
    result = combine_datasets(args.sources, args.out, merge=merge, copy=args.copy)
    print(result.summary())
    return 0


def _cmd_show_augment(args: argparse.Namespace) -> int:
    from braintumor.data.transforms import AugmentConfig, save_augment_grid

    cfg = AugmentConfig.from_yaml(args.config) if args.config else AugmentConfig()
    save_augment_grid(args.image, args.out, cfg=cfg, n=args.n, image_size=args.image_size, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from braintumor.data.sources import SliceOptions, import_lgg, import_volumes

    options = SliceOptions(
        min_tumour_px=args.min_tumour_px,
        min_head=args.min_head,
        every=args.every,
        normal_every=args.normal_every,
        tumour_label=args.tumour_label,
    )
    if not args.source_dir.is_dir():
        raise FileNotFoundError(f"{args.source_dir}: folder not found")
    if args.layout == "lgg":
        result = import_lgg(args.source_dir, args.out, options, source=args.source or "lgg", progress=not args.quiet)
    else:
        result = import_volumes(
            args.source_dir,
            args.out,
            options,
            source=args.source or "volumes",
            label=args.label,
            sequence=args.sequence,
            mask_suffix=args.mask_suffix,
            planes=tuple(p.strip() for p in args.planes.split(",") if p.strip()),
            progress=not args.quiet,
        )
    print(result.summary())
    return 0
