"""Print how the refusal of non-MRI input behaves: false rejections on real scans, detections on others.

    python benchmarks/ood_detection.py [--model default|PATH] [--test DIR] [--backend torch|onnx]

Real scans: every image of DIR (default: Nickparvar Testing). Non-MRI images, built here in memory
from what installed packages ship (no downloads): scikit-image's photos and microscopy/retina/skin
images (with random crops and rotations of each), its LFW face subset upscaled to 128 px, rendered
text pages, noise, blank and gradient images, checkerboards and a CT phantom. A refusal is a result
with `in_distribution: false` (the colour/blank gate or the Mahalanobis check) or a reader error.
"""

from __future__ import annotations

import argparse
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from braintumor.data import discover
from braintumor.inference import load_predictor, read_input

DEFAULT_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "nickparvar-7023" / "Testing"
# scikit-image images that ship inside the wheel (others need a download); `brain` is excluded: it IS MRI.
SKIMAGE_SHIPPED = (
    "astronaut",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "horse",
    "moon",
    "page",
    "rocket",
    "text",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "microaneurysms",
    "skin",
    "logo",
    "colorwheel",
    "grass",
    "gravel",
    "brick",
    "checkerboard",
    "cell",
    "motorcycle",
    "lily",
)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _skimage_images() -> dict[str, np.ndarray]:
    import skimage.data as data

    out = {}
    for name in SKIMAGE_SHIPPED:
        try:
            img = getattr(data, name)()
        except Exception:  # needs a download (offline here) or absent in this version
            continue
        img = np.asarray(img).astype(np.float32) if np.asarray(img).dtype == bool else np.asarray(img)
        if img.dtype != np.uint8:
            img = (255 * (img - img.min()) / max(float(np.ptp(img)), 1e-9)).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        out[name] = img
    return out


def _variants(name: str, img: np.ndarray, rng: np.random.Generator, n: int) -> dict[str, bytes]:
    """The image itself plus random crops (40-90 % of the side) and rotations, as PNGs."""
    out = {f"{name}.png": _png(img)}
    h, w = img.shape[:2]
    for k in range(n):
        s = rng.uniform(0.4, 0.9)
        ch, cw = max(48, int(h * s)), max(48, int(w * s))
        y, x = rng.integers(0, max(1, h - ch + 1)), rng.integers(0, max(1, w - cw + 1))
        crop = Image.fromarray(img[y : y + ch, x : x + cw]).rotate(float(rng.uniform(-30, 30)))
        out[f"{name}_crop{k}.png"] = _png(np.asarray(crop))
    return out


def _synthetic(rng: np.random.Generator) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k in range(15):
        size = int(rng.choice([128, 256, 512]))
        out[f"noise_uniform{k}.png"] = _png(rng.integers(0, 256, (size, size), dtype=np.uint8))
        out[f"noise_gauss{k}.png"] = _png(np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8))
        out[f"blank{k}.png"] = _png(np.full((size, size), int(rng.integers(0, 256)), np.uint8))
        ramp = np.linspace(0, 255, size, dtype=np.float32)
        out[f"gradient{k}.png"] = _png(
            np.outer(ramp, np.ones(size)).astype(np.uint8).T
            if k % 2
            else np.outer(ramp, np.ones(size)).astype(np.uint8)
        )
        tile = int(rng.integers(4, 64))
        board = ((np.indices((size, size)) // tile).sum(0) % 2 * 255).astype(np.uint8)
        out[f"checker{k}.png"] = _png(board)
        out[f"text_page{k}.png"] = _png(_text_page(rng, size))
    return out


def _text_page(rng: np.random.Generator, size: int) -> np.ndarray:
    words = [
        "patient",
        "report",
        "findings",
        "axial",
        "slice",
        "contrast",
        "lesion",
        "normal",
        "study",
        "impression",
        "the",
        "of",
        "and",
    ]
    img = Image.new("L", (size, size), int(rng.integers(200, 256)))
    draw = ImageDraw.Draw(img)
    for y in range(4, size - 10, 12):
        draw.text((4, y), " ".join(rng.choice(words, 8)), fill=int(rng.integers(0, 60)))
    return np.asarray(img)


def non_mri_images(seed: int = 0) -> dict[str, bytes]:
    import skimage.data as data
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    out: dict[str, bytes] = {}
    for name, img in _skimage_images().items():
        out.update(_variants(name, img, rng, n=4))
    faces = data.lfw_subset()[::2]  # 100 of the 200 faces, 25x25 grey: upscaled past the 32 px minimum
    for k, face in enumerate(faces):
        out[f"face{k}.png"] = _png((resize(face, (128, 128)) * 255).astype(np.uint8))
    phantom = (data.shepp_logan_phantom() * 255).astype(np.uint8)
    out.update(_variants("ct_phantom", phantom, rng, n=2))
    out.update(_synthetic(rng))
    return out


def refused(predictions) -> tuple[int, Counter]:
    reasons: Counter = Counter()
    for p in predictions:
        if p.error:
            reasons["unreadable"] += 1
        elif not p.in_distribution:
            reasons[re.split(r" \(|[:;,]", p.note or "refused")[0]] += 1
    return sum(reasons.values()), reasons


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--test", type=Path, default=DEFAULT_TEST)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    args = p.parse_args()
    predictor = load_predictor(args.model, backend=args.backend)
    if not predictor.ood_available:
        print("note: this model has no fitted OOD check; only the colour/blank gate refuses input")
    if args.test.exists():
        files = [s.path for s in discover(args.test).samples()]
        preds = predictor.predict_inputs([read_input(f) for f in files])
        n, why = refused(preds)
        print(f"real MRI scans ({args.test}): {n} of {len(files)} refused = false-rejection rate {n / len(files):.2%}")
        print(f"  reasons: {dict(why)}")
    else:
        print(f"real MRI scans: {args.test} not found; false-rejection rate not measured (pass --test DIR)")
    images = non_mri_images()
    preds = predictor.predict_inputs([read_input(data, name=name) for name, data in images.items()])
    n, why = refused(preds)
    print(f"non-MRI images: {n} of {len(images)} refused = detection rate {n / len(images):.2%}")
    print(f"  reasons: {dict(why)}")
    kinds = Counter(
        re.sub(r"(_crop)?\d*\.png$", "", name)
        for name, q in zip(images, preds, strict=True)
        if not q.error and q.in_distribution
    )
    print(f"  accepted (missed) by kind: {dict(kinds) or 'none'}")


if __name__ == "__main__":
    main()
