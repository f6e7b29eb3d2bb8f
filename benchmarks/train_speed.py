"""Print training throughput: the data pipeline alone, and full train steps per architecture.

    python benchmarks/train_speed.py [--data DIR] [--sizes 160 224] [--archs efficientnet_lite0 ...]

The data pipeline figure reads preprocessed arrays through the decode cache and applies the
training augmentations (what a DataLoader worker does per image). Train steps are forward +
backward + Adam on random tensors in the model's channel layout, so they measure compute alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from braintumor.data import check_readable, discover
from braintumor.data.cache import DecodeCache
from braintumor.data.preprocess import Preprocess
from braintumor.data.transforms import AugmentConfig, build_transforms
from braintumor.models import create_model, list_models

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nickparvar-7023"


def data_pipeline(data: Path, size: int, n: int) -> float:
    samples = discover(data).samples("train" if (data / "Training").exists() else None)[:n]
    with tempfile.TemporaryDirectory() as tmp:
        cache = DecodeCache(Path(tmp), Preprocess(image_size=size))
        check_readable(samples, cache=cache, progress=False)  # warm the cache first
        tf = build_transforms(AugmentConfig(), train=True, in_chans=3, mean=(0.5,), std=(0.5,))
        start = time.perf_counter()
        for s in samples:
            tf(cache.get(s.path))
        return len(samples) / (time.perf_counter() - start)


def train_steps(arch: str, size: int, batch: int, steps: int, channels_last: bool) -> float:
    model = create_model(arch, num_classes=4, in_chans=3, pretrained=False)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 4, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    for i in range(steps + 1):
        if i == 1:  # the first step pays for allocation and kernel selection
            start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    p.add_argument("--archs", nargs="+", default=list_models())
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--images", type=int, default=500, help="images for the data-pipeline figure")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.data.exists():
        print(f"data pipeline: {args.data} not found; only model steps are timed (pass --data DIR)")
    for size in args.sizes:
        if args.data.exists():
            print(f"data pipeline  {size:>4}px  {data_pipeline(args.data, size, args.images):8.1f} img/s (one process)")
        for arch in args.archs:
            for cl in (False, True):
                ips = train_steps(arch, size, args.batch_size, args.steps, cl)
                layout = "channels_last" if cl else "contiguous"
                print(f"train step     {size:>4}px  {arch:<20} {layout:<14} {ips:8.1f} img/s")


if __name__ == "__main__":
    main()
