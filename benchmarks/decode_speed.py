"""Decode-cache speed: first decode (decode + preprocess + write .npy) versus cached reads.

Usage:
    python benchmarks/decode_speed.py [DATA] [--split train] [--image-size 224] [--limit N] [--no-crop]

DATA defaults to ../shared/data/nickparvar-7023 next to the repository. Uses a fresh temporary
cache, deleted afterwards. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from braintumor.data import DecodeCache, Preprocess, discover

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nickparvar-7023"


def _timed_pass(cache: DecodeCache, paths: list[Path]) -> float:
    start = time.perf_counter()
    for p in paths:
        cache.get(p)
    return time.perf_counter() - start


def _report(label: str, n: int, seconds: float) -> None:
    print(f"{label}: {n} images in {seconds:.1f} s = {n / seconds:.0f} img/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="dataset root")
    parser.add_argument("--split", default="train", help="split to read (train, val, test or all)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--limit", type=int, help="read only the first N images")
    parser.add_argument("--no-crop", action="store_true", help="skip the crop-to-head step")
    args = parser.parse_args()

    paths = [s.path for s in discover(args.data).samples(args.split)][: args.limit]
    pp = Preprocess(image_size=args.image_size, crop=not args.no_crop)
    print(f"{args.data} [{args.split}]: {len(paths)} images, preprocessing {pp.key()}")
    with tempfile.TemporaryDirectory(prefix="braintumor-bench-") as tmp:
        cache = DecodeCache(tmp, pp)
        _report("first decode", len(paths), _timed_pass(cache, paths))
        _report("cached read (same process, stat memo)", len(paths), _timed_pass(cache, paths))
        # A new DecodeCache has no memo: each read hashes the file's bytes, as a new training run would.
        _report("cached read (new run, hash + load)", len(paths), _timed_pass(DecodeCache(tmp, pp), paths))
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.npy"))
        print(f"cache size: {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        sys.exit(f"decode_speed: {exc}")
