"""Print how a model holds up on its own validation split under shifts other hospitals bring.

    python benchmarks/robustness.py [--model default|PATH] [--limit N] [--backend torch|onnx]

Scans from other scanners and sites differ in framing (field of view, margins, centring), intensity
(gain, contrast, gamma), resolution, blur, noise and compression. No such scans are available here,
so each validation scan (rebuilt from the model's sidecar, as `braintumor calibrate` does; scans the
model never trained on) is read once and shifted in one way at a time, at the file's own resolution,
before the model's usual preprocessing. For each shift it prints accuracy and macro-F1 on all scans
(the classifier's answer even where the out-of-distribution check would refuse) and the share the
check refuses. Not a substitute for scans from another hospital: real shifts combine, and a change of
MRI sequence (T1 vs T2 vs FLAIR) cannot be simulated by an intensity curve.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image
from sklearn.metrics import f1_score

from braintumor.cli.train import RELOCATE_HELP
from braintumor.inference import load_predictor
from braintumor.io import ScanReadError, read_scan
from braintumor.models import load_model
from braintumor.models.default import resolve_model_path
from braintumor.training.calibrate import parse_relocations, rebuilt_split

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _pad(img: np.ndarray, frac: float, *, corner: bool = False) -> np.ndarray:
    h, w = img.shape
    ph, pw = int(h * frac), int(w * frac)
    top, left = (ph, pw) if corner else (ph // 2, pw // 2)
    out = np.zeros((h + ph, w + pw), np.uint8)
    out[top : top + h, left : left + w] = img
    return out


def _crop(img: np.ndarray, keep: float) -> np.ndarray:
    h, w = img.shape
    dh, dw = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    return img[dh : h - dh, dw : w - dw]


def _curve(img: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.clip(f(img.astype(np.float32) / 255.0) * 255.0, 0, 255).round().astype(np.uint8)


def _rescale(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape
    small = cv2.resize(img, (side, max(1, round(side * h / w))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


SHIFTS: dict[str, Shift] = {
    "none": lambda x, r: x,
    "framing: wide margin (+60 % black border)": lambda x, r: _pad(x, 0.6),
    "framing: off-centre (+40 % border top-left)": lambda x, r: _pad(x, 0.4, corner=True),
    "framing: tight crop (central 80 %)": lambda x, r: _crop(x, 0.8),
    "rotation 15 degrees": lambda x, r: _rotate(x, 15.0),
    "gain x0.6 (darker)": lambda x, r: _curve(x, lambda v: v * 0.6),
    "contrast x0.5 around mid-grey": lambda x, r: _curve(x, lambda v: 0.5 + (v - 0.5) * 0.5),
    "gamma 0.6": lambda x, r: _curve(x, lambda v: v**0.6),
    "gamma 1.6": lambda x, r: _curve(x, lambda v: v**1.6),
    "low resolution (128 px and back)": lambda x, r: _rescale(x, 128),
    "blur (sigma 2 px)": lambda x, r: cv2.GaussianBlur(x, (0, 0), 2.0),
    "noise (sigma 8 levels)": lambda x, r: np.clip(x + r.normal(0, 8, x.shape), 0, 255).astype(np.uint8),
    "JPEG quality 20": lambda x, r: _jpeg(x, 20),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    ap.add_argument("--limit", type=int, help="use N validation scans chosen at random (faster)")
    ap.add_argument("--relocate", action="append", metavar="OLD=NEW", help=RELOCATE_HELP)
    args = ap.parse_args()

    path = resolve_model_path(args.model)
    loaded = load_model(path)
    try:
        with rebuilt_split(loaded, path, relocate=parse_relocations(args.relocate), progress=False) as (prepared, _):
            val = prepared.val
    except (FileNotFoundError, ValueError) as exc:
        print(f"robustness: {exc}", file=sys.stderr)
        return 2
    if args.limit and args.limit < len(val):  # a seeded random subset keeps every class
        keep = np.random.default_rng(0).choice(len(val), size=args.limit, replace=False)
        val = [val[i] for i in sorted(keep)]
    predictor = load_predictor(args.model, backend=args.backend)
    names = predictor.class_names
    images, labels = [], []
    for s in val:
        try:
            images.append(read_scan(s.path).as_uint8())
            labels.append(names.index(s.label))
        except ScanReadError as exc:
            print(f"skipped {s.path}: {exc.reason}", file=sys.stderr)
    y = np.asarray(labels)
    print(f"{len(images)} validation scans of {path} ({', '.join(names)}); backend {args.backend}")
    print(f"{'shift':<46} {'accuracy':>9} {'macro-F1':>9} {'OOD refused':>12}")
    rng = np.random.default_rng(0)
    for name, shift in SHIFTS.items():
        preds, refused = [], []
        step = predictor.batch_size
        for start in range(0, len(images), step):
            batch = np.stack([predictor.pipeline(shift(im, rng)).numpy() for im in images[start : start + step]])
            logits, features = predictor.backend.run(batch)
            preds.append(np.argmax(logits, axis=1))
            if predictor.ood is not None:
                refused.append(~predictor.ood.in_distribution(features)[1])
        p = np.concatenate(preds)
        ood = f"{np.concatenate(refused).mean():>11.1%}" if refused else f"{'n/a':>11}"
        # over the classes present among the scans (as `evaluate` does): with --limit one may be missing
        f1 = f1_score(y, p, average="macro", labels=sorted(set(y)), zero_division=0)
        print(f"{name:<46} {(p == y).mean():>9.3f} {f1:>9.3f} {ood:>12}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
