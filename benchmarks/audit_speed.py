"""Leakage-audit speed: wall and CPU time of `run_audit` per stage, and what it found.

Usage:
    python benchmarks/audit_speed.py [DATA] [--against OTHER] [--workers N] [--examples 12] [--out DIR]

DATA defaults to ../shared/data/nickparvar-7023 next to the repository. Writes into a temporary
folder unless --out is given. CPU time counts this process only: the decoding pool runs under a
forkserver whose workers are not our children, so use --workers 1 to measure the total CPU work.
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from braintumor.data.audit import run_audit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nickparvar-7023"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--against", type=Path)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--examples", type=int, default=12)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = run_audit(
            args.data, against=args.against, out_dir=out, examples=args.examples, progress=False, workers=args.workers
        )
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    n = sum(result.images.values())
    print(f"{n} images ({', '.join(f'{r} {c}' for r, c in result.images.items())})")
    print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(f"wall {wall:.1f} s, CPU of this process (user+sys) {cpu:.1f} s, {n / wall:.0f} img/s")
    print(f"duplicate pairs {len(result.pairs)}; test images leaking {len(result.test_leaking)}")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        sys.exit(f"audit_speed: {exc}")
