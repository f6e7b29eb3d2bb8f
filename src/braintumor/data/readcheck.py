"""Read every scan once and sort the readable from the unreadable, optionally filling the decode cache.

A training run that meets a corrupt file in epoch 7 wastes hours; reading everything up front
costs one decode per file, and with a `DecodeCache` that decode is the cache warm-up the first
epoch would have paid anyway.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from braintumor.data.cache import DecodeCache
from braintumor.data.discovery import Sample
from braintumor.io import ScanReadError, read_scan

log = logging.getLogger(__name__)

# Below this many files a process pool costs more to start than it saves.
_MIN_FILES_FOR_POOL = 64

_worker_cache: DecodeCache | None = None


def available_cpus() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _init_worker(cache: DecodeCache | None) -> None:
    # No cv2.setNumThreads here: in a forked child of a process whose OpenCV thread pool has run,
    # it deadlocks (OpenCV 4.x/5.0). Plain OpenCV calls in such a child are fine.
    global _worker_cache
    _worker_cache = cache


def _check(path: Path, cache: DecodeCache | None) -> str | None:
    """None when readable, else a message naming the file and the reason. Never raises."""
    try:
        if cache is not None:
            cache.get(path)
        else:
            read_scan(path)
    except ScanReadError as exc:
        return str(exc)
    except Exception as exc:  # a reader bug must be reported per file, not abort the whole check
        return f"{path}: unexpected {type(exc).__name__}: {exc}"
    return None


def _check_in_worker(path: Path) -> str | None:
    return _check(path, _worker_cache)


def _results(paths: list[Path], cache: DecodeCache | None, workers: int) -> Iterator[str | None]:
    if workers <= 1:
        yield from (_check(p, cache) for p in paths)
        return
    # The cache goes to each worker once (initializer), not with every task.
    chunk = max(1, min(32, len(paths) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(cache,)) as pool:
        yield from pool.map(_check_in_worker, paths, chunksize=chunk)


def check_readable(
    samples: Sequence[Sample],
    *,
    cache: DecodeCache | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[list[Sample], list[tuple[Path, str]]]:
    """Read every sample's file once; split them into readable samples and (path, message) failures.

    Args:
        samples: what `discover` found.
        cache: when given, each file goes through `cache.get` (decode, preprocess, store), so this
            pass also warms the cache for training.
        workers: processes to use; None sizes the pool to the machine's cores (one process for
            small lists). 1 reads in this process.
        progress: show a tqdm progress bar on stderr.

    Returns:
        (readable samples in input order, [(path, message naming the file and the reason)]).
        Each failure is also logged as a warning; none is fatal.
    """
    paths = [s.path for s in samples]
    if workers is None:
        workers = available_cpus() if len(paths) >= _MIN_FILES_FOR_POOL else 1
    workers = max(1, min(workers, len(paths) or 1))
    good: list[Sample] = []
    bad: list[tuple[Path, str]] = []
    results = _results(paths, cache, workers)
    bar = tqdm(results, total=len(paths), desc="reading scans", unit="file", disable=not progress, file=sys.stderr)
    for message, sample in zip(bar, samples, strict=True):
        if message is None:
            good.append(sample)
        else:
            log.warning("unreadable scan skipped: %s", message)
            bad.append((sample.path, message))
    return good, bad
