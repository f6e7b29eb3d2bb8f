"""Inference speed: PyTorch eager versus ONNX Runtime on CPU, batch throughput and single-image latency.

Usage:
    python benchmarks/inference_speed.py [--model default|PATH] [--batch-size 32] [--batches 10]
        [--singles 200] [--threads N] [--channels-last] [--backends torch,onnx]

Figures: model-only batch throughput (images/s), model-only single-image latency p50/p99, and end-to-end
single-image latency (read a JPEG from bytes, gate, preprocess, forward, softmax) on the shipped sample
scans. The ONNX file is `<stem>.onnx` beside the checkpoint when it exists, else a temporary export.
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from braintumor.inference import Predictor, load_predictor, read_input
from braintumor.inference.backends import cpu_count
from braintumor.inference.export import export_with_ood
from braintumor.models import checkpoint_paths, load_model
from braintumor.models.default import resolve_model_path

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "samples"


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return float(p50), float(p99)


def _bench(predictor: Predictor, batch_size: int, batches: int, singles: int) -> dict[str, float]:
    size, chans = predictor.pipeline.preprocess.image_size, int(predictor.card["in_chans"])
    batch = np.random.default_rng(0).normal(size=(batch_size, chans, size, size)).astype(np.float32)
    predictor.backend.run(batch)  # warm-up: allocators, oneDNN kernels, ORT arenas
    start = time.perf_counter()
    for _ in range(batches):
        predictor.backend.run(batch)
    throughput = batches * batch_size / (time.perf_counter() - start)
    one = batch[:1]
    model_times = []
    for _ in range(singles):
        t = time.perf_counter()
        predictor.backend.run(one)
        model_times.append(time.perf_counter() - t)
    blobs = [p.read_bytes() for p in sorted(SAMPLES.glob("*/*.jpg"))]
    e2e = []
    for i in range(singles):
        t = time.perf_counter()
        predictor.predict_inputs([read_input(blobs[i % len(blobs)], name="scan.jpg")])
        e2e.append(time.perf_counter() - t)
    m50, m99 = _percentiles(model_times)
    e50, e99 = _percentiles(e2e)
    return {"img_s": throughput, "m50": m50, "m99": m99, "e50": e50, "e99": e99}


def _onnx_path(model_path: Path, tmp: str) -> Path:
    beside = checkpoint_paths(model_path)[0].with_suffix(".onnx")
    if beside.is_file():
        return beside
    # with the OOD check's features and files, so both backends do the same work per scan
    return export_with_ood(load_model(model_path), model_path, Path(tmp) / "model.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default', a run folder or a checkpoint")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="timed batches for throughput")
    parser.add_argument("--singles", type=int, default=200, help="timed single-image calls for latency")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    parser.add_argument("--channels-last", action="store_true", help="PyTorch: NHWC memory format")
    parser.add_argument("--backends", default="torch,onnx")
    args = parser.parse_args()

    path = resolve_model_path(args.model)
    machine = platform.processor() or platform.machine()
    print(f"model {path} | {machine}, {cpu_count()} cores usable, torch {torch.__version__}")
    heads = ("batch img/s", "model p50 ms", "model p99 ms", "e2e p50 ms", "e2e p99 ms")
    print(f"load average {os.getloadavg()[0]:.1f} (other processes on this machine slow every figure)")
    print(f"{'backend':<8} " + " ".join(f"{h:>{w}}" for h, w in zip(heads, (12, 13, 13, 11, 11), strict=True)))
    with tempfile.TemporaryDirectory(prefix="braintumor-speed-") as tmp:
        for backend in args.backends.split(","):
            model = path if backend == "torch" else _onnx_path(path, tmp)
            predictor = load_predictor(
                model,
                backend=backend,
                threads=args.threads,
                batch_size=args.batch_size,
                channels_last=args.channels_last,
            )
            r = _bench(predictor, args.batch_size, args.batches, args.singles)
            figures = f"{r['img_s']:>12.1f} {r['m50']:>13.2f} {r['m99']:>13.2f} {r['e50']:>11.2f} {r['e99']:>11.2f}"
            print(f"{backend:<8} {figures}", flush=True)


if __name__ == "__main__":
    main()
