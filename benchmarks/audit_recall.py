"""Leakage-audit recall on crafted copies: which edits of a scan the audit still pairs with it.

Usage:
    python benchmarks/audit_recall.py [DATA] [--n 120] [--seed 0] [--edits crop5,rot3] [--distractors DIR|none]

Draws N scans (seeded, all classes) from DATA (default ../shared/data/nickparvar-7023/Testing),
writes each unchanged (the originals) and one edited copy of each per edit, and runs the audit's
matching stage (`audit_match.classify`, the thresholds `braintumor data audit` uses) once per edit on
the distractors (default: Nickparvar's 5712 Training scans), the originals and that edit's copies.
Prints, per edit, how many copies were paired with their own original and as what kind: a copy paired
only with something else (a training slice of the same patient, say) counts as missed. Also prints
how many copies were paired with an original of another class: false alarms unless the two are the
same patient. Distractors matter: the audit's second look registers each image with its few nearest
partners, and real neighbours compete for those places.

The edits are those a dataset merge or an augmentation pass makes: re-encoding, resizing, brightness
and contrast changes, 16-bit export, mirroring, padding, cropping and small rotations. Prints
figures; not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from braintumor.data.audit.features import Fingerprints, fingerprint_files, gray8
from braintumor.data.audit.match import KINDS, Thresholds, classify
from braintumor.data.discovery import discover
from braintumor.io import read_scan

NICKPARVAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nickparvar-7023"
DEFAULT_DATA, DEFAULT_DISTRACTORS = NICKPARVAR / "Testing", NICKPARVAR / "Training"


def _resize(f: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda g: cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def _crop(f: float) -> Callable[[np.ndarray], np.ndarray]:
    def crop(g: np.ndarray) -> np.ndarray:
        h, w = g.shape
        dy, dx = round(f * h), round(f * w)
        return g[dy : h - dy, dx : w - dx]

    return crop


def _pad(f: float) -> Callable[[np.ndarray], np.ndarray]:
    def pad(g: np.ndarray) -> np.ndarray:
        dy, dx = round(f * g.shape[0]), round(f * g.shape[1])
        return cv2.copyMakeBorder(g, dy, dy, dx, dx, cv2.BORDER_CONSTANT, value=0)

    return pad


def _rotate(deg: float) -> Callable[[np.ndarray], np.ndarray]:
    def rotate(g: np.ndarray) -> np.ndarray:
        h, w = g.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(g, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)

    return rotate


def _levels(scale: float, offset: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda g: np.clip(g.astype(np.float32) * scale + offset, 0, 255).astype(np.uint8)


# name -> (edit of the uint8 grayscale scan, file suffix). "16bit" is written as 16-bit PNG.
EDITS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "jpeg75": (lambda g: g, ".jpg"),
    "png": (lambda g: g, ".png"),
    "resize0.75": (_resize(0.75), ".jpg"),
    "resize1.7": (_resize(1.7), ".jpg"),
    "bright+10": (_levels(1.0, 10.0), ".png"),
    "contrast1.2": (_levels(1.2, -10.0), ".png"),
    "16bit": (lambda g: g, ".png"),
    "mirror": (lambda g: g[:, ::-1], ".png"),
    "pad10": (_pad(0.10), ".png"),
    "crop5": (_crop(0.05), ".png"),
    "crop10": (_crop(0.10), ".png"),
    "rot3": (_rotate(3.0), ".png"),
    "rot-5": (_rotate(-5.0), ".png"),
}


def _write(path: Path, img: np.ndarray, edit: str) -> None:
    if edit == "16bit":
        img = img.astype(np.uint16) * 257
    params = [cv2.IMWRITE_JPEG_QUALITY, 75] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(img), params):
        raise OSError(f"cannot write {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=120, help="scans to copy (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edits", default=",".join(EDITS), help="comma-separated subset of: " + ", ".join(EDITS))
    parser.add_argument("--keep", type=Path, help="write the originals and copies here instead of a temp folder")
    parser.add_argument(
        "--distractors",
        default="",
        help="class-folder dataset added to the originals' side, so that copies compete with real neighbours "
        "(default: Nickparvar's Training/ beside DATA's default; 'none' for none)",
    )
    parser.add_argument(
        "--neighbours", type=int, default=Thresholds().neighbours, help="the audit's second look; 0 turns it off"
    )
    parser.add_argument(
        "--zoom-neighbours",
        type=int,
        default=Thresholds().zoom_neighbours,
        help="partners of each zoomed view also registered; 0 for none",
    )
    args = parser.parse_args()
    edits = [e.strip() for e in args.edits.split(",") if e.strip()]
    unknown = [e for e in edits if e not in EDITS]
    if unknown:
        parser.error(f"unknown edit(s): {', '.join(unknown)}")
    if not args.data.is_dir():
        print(f"{args.data}: no such folder; point DATA at a class-folder dataset (e.g. Nickparvar's Testing/)")
        sys.exit(2)
    index = discover(args.data)
    samples = [s for split in index.splits.values() for s in split]
    random.Random(args.seed).shuffle(samples)
    chosen = samples[: args.n]

    distractors: list[Path] = []
    if args.distractors != "none":
        where = Path(args.distractors) if args.distractors else DEFAULT_DISTRACTORS
        if where.is_dir():
            distractors = [s.path for split in discover(where).splits.values() for s in split]
        else:
            print(f"no distractors: {where} is not a folder (the audit is measured on the copies alone)")

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        origs: list[Path] = []
        copies: dict[str, list[Path]] = {e: [] for e in edits}
        labels: list[str] = []
        for k, s in enumerate(chosen):
            gray = gray8(read_scan(s.path).pixels)
            (root / "originals" / s.label).mkdir(parents=True, exist_ok=True)
            origs.append(root / "originals" / s.label / f"o{k:04d}.png")
            _write(origs[-1], gray, "png")
            labels.append(s.label)
            for e in edits:
                fn, suffix = EDITS[e]
                (root / e / s.label).mkdir(parents=True, exist_ok=True)
                copies[e].append(root / e / s.label / f"c{k:04d}{suffix}")
                _write(copies[e][-1], fn(gray), e)
        every = distractors + origs + [p for e in edits for p in copies[e]]
        fp = fingerprint_files(every, progress=False)
        if len(fp.paths) != len(every):
            print(
                f"{len(every) - len(fp.paths)} files unreadable: "
                + "; ".join(f"{p}: {r}" for p, r in fp.unreadable[:3])
            )
            sys.exit(1)

        n_d, n = len(distractors), len(chosen)
        print(
            f"audit recall on crafted copies: {n} scans of {args.data} (seed {args.seed}), each edit audited on its "
            f"own against the {n} originals and {n_d} distractors"
        )
        print(f"{'edit':<12} {'found':>9}  {'kinds':<28} {'off-class':>9} {'match s':>8}")
        total = 0
        for m, e in enumerate(edits):
            base = n_d + n + m * n  # this edit's copies in `every`
            keep = np.r_[np.arange(n_d + n), np.arange(base, base + n)]
            sub = Fingerprints(
                [fp.paths[k] for k in keep], fp.index[keep], [fp.sha1[k] for k in keep], fp.crops[keep], []
            )
            t0 = time.perf_counter()
            pairs = classify(sub, Thresholds(neighbours=args.neighbours, zoom_neighbours=args.zoom_neighbours))
            dt = time.perf_counter() - t0
            dup = pairs.kind != ""
            kinds: dict[int, str] = {}
            off_class = 0
            for a, b, kind in zip(pairs.i[dup], pairs.j[dup], pairs.kind[dup], strict=True):
                lo, hi = min(a, b), max(a, b)  # hi is the copy when one of the two is
                if hi < n_d + n:
                    continue
                c = hi - n_d - n
                if lo == n_d + c:
                    if c not in kinds or KINDS.index(kind) < KINDS.index(kinds[c]):
                        kinds[c] = kind
                elif n_d <= lo < n_d + n and labels[lo - n_d] != labels[c]:
                    off_class += 1
            found = Counter(kinds.values())
            total += len(kinds)
            listed = ", ".join(f"{k} {found[k]}" for k in KINDS if found[k])
            print(f"{e:<12} {len(kinds):>4}/{n:<4}  {listed:<28} {off_class:>9} {dt:>8.1f}")
        print(f"{'all':<12} {total:>4}/{n * len(edits):<4}  missed {n * len(edits) - total}")
        print(
            "found: the copy paired with its own original; off-class: pairs of a copy with an original of another class"
        )


if __name__ == "__main__":
    main()
