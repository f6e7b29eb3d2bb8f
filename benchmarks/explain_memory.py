"""Memory of a long-lived explainer: resident-set growth over many CAM explanations in one process.

Usage:
    python benchmarks/explain_memory.py [--model PATH] [--n 1000] [--warmup 100] [--no-overlay] [--max-growth-mb 50]

Without --model a small untrained simple_cnn checkpoint (4 classes, 1 channel, 128 px) is written to a
temporary folder; `--model default` is the shipped model. Scans are the sample JPEGs shipped in the package,
read once; each call cycles through the CAM methods (LayerCAM, Grad-CAM, Grad-CAM++) and (unless
--no-overlay) encodes the overlay PNG, every tenth with a colour bar, as the service would. RSS comes from
/proc/self/statm (Linux).

Two figures are printed. Raw RSS moves up and down by tens of MiB between readings: glibc keeps freed
heap pages of the many 1-3 MiB image buffers instead of returning them at once. The retained figure asks
glibc to return them (`malloc_trim(0)`) right after the raw baseline and final readings, so it shows memory
still in use; a leak grows both. Exits with status 1 when the retained growth (the raw one without glibc) reaches
--max-growth-mb. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from braintumor.data.preprocess import Preprocess
from braintumor.explain import METHODS, Explainer, overlay_png
from braintumor.io import read_scan
from braintumor.models import create_model, load_model, save_checkpoint
from braintumor.models.default import resolve_model_path

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "samples"


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        sys.exit("explain_memory: /proc/self/statm is not readable; this benchmark needs Linux")
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), which returns free heap pages to the OS; None on other C libraries."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)
    return (lambda: trim(0)) if trim else None


def readings(trim: Callable[[], object] | None) -> tuple[float, float | None]:
    """(raw RSS, RSS after returning free heap pages) in MiB, after a full garbage collection."""
    gc.collect()
    raw = rss_mb()
    if trim is None:
        return raw, None
    trim()
    return raw, rss_mb()


def small_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    classes = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    model = create_model("simple_cnn", num_classes=len(classes), in_chans=1).eval()
    save_checkpoint(
        folder / "model",
        model,
        arch="simple_cnn",
        num_classes=len(classes),
        in_chans=1,
        class_names=classes,
        image_size=128,
        preprocess=Preprocess(image_size=128).to_dict(),
        normalization={"mean": [0.5], "std": [0.5], "per_scan_norm": False},
    )
    return folder


def run(explainer: Explainer, scans: list, n: int, overlay: bool, start: int = 0) -> None:
    methods = list(METHODS)
    for i in range(start, start + n):
        scan = scans[i % len(scans)]
        exp = explainer.explain(scan, method=methods[i % len(methods)])
        if overlay:
            overlay_png(scan, exp.cam, colorbar=i % 10 == 0)


def _fmt(raw: float, kept: float | None) -> str:
    return f"RSS {raw:.1f} MiB" + ("" if kept is None else f", retained {kept:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: a small untrained simple_cnn)")
    parser.add_argument("--n", type=int, default=1000, help="explanations measured after warm-up")
    parser.add_argument("--warmup", type=int, default=100, help="explanations before the baseline reading")
    parser.add_argument("--no-overlay", action="store_true", help="skip the overlay PNG of each explanation")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="braintumor-bench-") as tmp:
        loaded = load_model(resolve_model_path(args.model) if args.model else small_checkpoint(Path(tmp)))
    scans = [read_scan(p) for p in sorted(SAMPLES.glob("*/*.jpg"))]
    explainer = Explainer(loaded)
    trim = _malloc_trim()
    print(f"model {loaded.arch} ({loaded.image_size} px), {len(scans)} sample scans, overlays {not args.no_overlay}")
    run(explainer, scans, args.warmup, not args.no_overlay)
    base = readings(trim)
    print(f"after {args.warmup} warm-up explanations: {_fmt(*base)}")
    start = time.perf_counter()
    step = max(1, args.n // 10)
    for done in range(0, args.n, step):
        run(explainer, scans, min(step, args.n - done), not args.no_overlay, start=args.warmup + done)
        # Raw only: trimming here would also shrink the raw readings that follow.
        print(f"  {done + min(step, args.n - done):5d} explanations: {_fmt(*readings(None))}", flush=True)
    seconds = time.perf_counter() - start
    end = readings(trim)
    raw_growth = end[0] - base[0]
    kept_growth = None if trim is None else end[1] - base[1]
    print(f"{args.n} explanations in {seconds:.1f} s ({args.n / seconds:.1f}/s)")
    print(
        f"RSS growth after warm-up: raw {raw_growth:+.1f} MiB"
        + ("" if kept_growth is None else f", retained {kept_growth:+.1f} MiB")
    )
    growth = raw_growth if kept_growth is None else kept_growth
    if growth >= args.max_growth_mb:
        sys.exit(f"memory grew by {growth:.1f} MiB, limit {args.max_growth_mb:g} MiB")


if __name__ == "__main__":
    main()
