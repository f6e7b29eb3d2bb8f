"""Load test of the web service: many concurrent clients posting scans for a while.

Usage:
    python benchmarks/load_test.py --model PATH [--clients 16] [--duration 60] [--files-per-request 1]
    python benchmarks/load_test.py --url http://127.0.0.1:8000 [--server-pid PID] [--token-env VAR]

With --model it starts `braintumor serve` on a free loopback port (a subprocess) and stops it at the end;
with --url it targets a running server (give --server-pid to see its memory). Each client posts the shipped
sample scans in turn to /api/v1/predict. Prints throughput, latency p50/p99, failures (non-200 answers and
connection errors) and the server's resident memory (VmRSS, its worker processes included) at the start,
the middle and the end. The clients run on the same machine as the server and take CPU from it: on a small
machine the figures are a lower bound. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "samples"


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MiB, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def start_server(model: str, threads: int | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "braintumor.cli", "serve", "--model", model, "--port", str(port)]
    cmd += ["--log-level", "warning"] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not answer /api/v1/health within 120 s")


class Load:
    """Counts and latencies shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()

    def record(self, outcome: str, seconds: float) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "200":
                self.latencies.append(seconds)


def client(url: str, headers: dict, blobs: list[tuple[str, bytes]], per_request: int, stop: float, load: Load) -> None:
    i = 0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        while time.monotonic() < stop:
            files = [("files", blobs[(i + k) % len(blobs)]) for k in range(per_request)]
            i += per_request
            t = time.perf_counter()
            try:
                outcome = str(c.post("/api/v1/predict", files=files).status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            load.record(outcome, time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="start `braintumor serve --model MODEL` on a free loopback port")
    where.add_argument("--url", help="target this running server")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's process id, to read its memory")
    parser.add_argument("--token-env", default="BRAINTUMOR_API_TOKEN", help="variable holding the bearer token")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--files-per-request", type=int, default=1)
    parser.add_argument("--threads", type=int, help="with --model: the server's model threads")
    args = parser.parse_args()

    proc, url = start_server(args.model, args.threads) if args.model else (None, args.url.rstrip("/"))
    pid = proc.pid if proc else args.server_pid
    token = os.environ.get(args.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    blobs = [(p.name, p.read_bytes()) for p in sorted(SAMPLES.glob("*/*.jpg"))]
    try:
        _run(url, headers, blobs, args, pid)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)


def _run(url: str, headers: dict, blobs: list, args: argparse.Namespace, pid: int | None) -> None:
    memory = {"start": rss_mib(pid) if pid else float("nan")}
    load = Load()
    t0 = time.monotonic()
    stop = t0 + args.duration
    threads = [
        threading.Thread(target=client, args=(url, headers, blobs, args.files_per_request, stop, load), daemon=True)
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    time.sleep(args.duration / 2)
    memory["middle"] = rss_mib(pid) if pid else float("nan")
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    memory["end"] = rss_mib(pid) if pid else float("nan")
    ok = load.outcomes.get("200", 0)
    failures = sum(n for k, n in load.outcomes.items() if k != "200")
    p50, p99 = np.percentile(np.asarray(load.latencies) * 1000, [50, 99]) if load.latencies else (np.nan, np.nan)
    print(f"{url}: {args.clients} clients, {elapsed:.0f} s, {args.files_per_request} scan(s) per request")
    print(f"requests: {ok} ok, {failures} failed {dict(load.outcomes)}")
    print(f"throughput: {ok / elapsed:.1f} requests/s = {ok * args.files_per_request / elapsed:.1f} scans/s")
    print(f"latency: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print("server RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))


if __name__ == "__main__":
    main()
