"""`run_audit`: the audit from folders to the files in OUT (see the package docstring for what they hold)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from braintumor.data.audit.features import Fingerprints, fingerprint_files
from braintumor.data.audit.graph import (
    COPY_KINDS,
    ROLE_ORDER,
    ImageInfo,
    components,
    label_conflicts,
    leaks,
    oriented,
    pair_record,
    within_split,
)
from braintumor.data.audit.match import KINDS, Pairs, Thresholds, classify
from braintumor.data.audit.report import AuditResult, write_examples, write_json, write_lists
from braintumor.data.discovery import discover

__all__ = ["AuditResult", "Thresholds", "run_audit"]


def _collect(data: Path, against: Path | None) -> tuple[list[ImageInfo], list[Path], list[Path]]:
    """Every image of the audit with its role; returns (infos, absolute paths, resolved roots)."""
    index = discover(data)
    if against is None and "test" in index.splits and "train" not in index.splits:
        raise ValueError(f"{data}: has a test split but no train split; use --against TRAINING_DATA")
    sets = [(index, "data", None if against is None else "test")]
    roots: list[Path] = []
    if against is not None:
        sets.append((discover(against), "against", "train"))
    infos, paths = [], []
    for idx, name, role in sets:
        roots.append(idx.root)
        for split, samples in idx.splits.items():
            for s in samples:
                infos.append(ImageInfo(idx.relpath(s.path), name, role or split, split, s.label))
                paths.append(s.path)
    return infos, paths, roots


def _readable_per_role(infos: list[ImageInfo], kept_infos: list[ImageInfo]) -> dict[str, int]:
    """Readable images per role, listing roles whose files are all unreadable too (with 0)."""
    counts = Counter(x.role for x in kept_infos)
    return {r: counts.get(r, 0) for r in sorted({x.role for x in infos}, key=ROLE_ORDER.get)}


def _unreadable(infos: list[ImageInfo], kept: np.ndarray, bad: list[tuple[Path, str]]) -> list[dict]:
    """Unreadable files with their relative path; `bad` lists them in input order, as `infos` does."""
    lost = sorted(set(range(len(infos))) - set(kept.tolist()))
    return [
        {"path": infos[k].rel, "dataset": infos[k].dataset, "reason": reason}
        for k, (_, reason) in zip(lost, bad, strict=True)
    ]


def _per_kind(found: dict[int, str]) -> dict[str, int]:
    counts = Counter(found.values())
    return {**{k: counts.get(k, 0) for k in KINDS}, "any": len(found)}


def _groups(infos: list[ImageInfo], kept: np.ndarray, dups: Pairs) -> dict[str, int]:
    """DATA path -> group id; ids count from 0 in listing order, unreadable files get their own."""
    comp = components(len(kept), dups.i, dups.j)
    node_of = {int(k): n for n, k in enumerate(kept)}
    ids: dict[tuple[str, int], int] = {}
    out = {}
    for pos, info in enumerate(infos):
        if info.dataset != "data":
            continue
        key = ("c", int(comp[node_of[pos]])) if pos in node_of else ("u", pos)
        out[info.rel] = ids.setdefault(key, len(ids))
    return out


def _lists(
    kept_infos: list[ImageInfo], test_leak: dict[int, str], train_leak: dict[int, str]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """test_leaking, test_clean, train_minus_leaks and train_leaking, in listing order."""
    leaking = [x.rel for n, x in enumerate(kept_infos) if x.role == "test" and n in test_leak]
    clean = [x.rel for n, x in enumerate(kept_infos) if x.role == "test" and n not in test_leak]
    train_ok = [x.rel for n, x in enumerate(kept_infos) if x.role == "train" and n not in train_leak]
    train_bad = [x.rel for n, x in enumerate(kept_infos) if x.role == "train" and n in train_leak]
    return leaking, clean, train_ok, train_bad


def _findings(roots: list[Path], th: Thresholds, infos: list[ImageInfo], fp: Fingerprints, pairs: Pairs) -> AuditResult:
    """Everything the audit reports, from the classified pairs (indices into `fp`)."""
    kept = fp.index
    kept_infos = [infos[k] for k in kept]
    roles = [x.role for x in kept_infos]
    images = _readable_per_role(infos, kept_infos)
    dups = pairs.select(pairs.kind != "")
    test_leak = leaks(dups, roles, "test", ("train", "val"))
    train_leak = leaks(dups, roles, "train", ("test",))
    val_leak = leaks(dups, roles, "val", ("train",))
    cross = Counter(k for a, b, k in zip(dups.i, dups.j, dups.kind, strict=True) if roles[a] != roles[b])
    leaking, clean, train_ok, train_bad = _lists(kept_infos, test_leak, train_leak)
    return AuditResult(
        data=roots[0],
        against=roots[1] if len(roots) > 1 else None,
        thresholds=th,
        images=images,
        test_leaks=_per_kind(test_leak),
        train_leaks=_per_kind(train_leak),
        val_leaks=_per_kind(val_leak),
        cross_pairs={**{k: cross.get(k, 0) for k in KINDS}, "any": sum(cross.values())},
        within=within_split(dups, roles, list(images)),
        label_conflicts=label_conflicts(dups, kept_infos, COPY_KINDS),
        near_label_mismatches=label_conflicts(dups, kept_infos, ("near",)),
        test_leaking=leaking,
        test_clean=clean,
        train_minus_leaks=train_ok,
        train_leaking=train_bad,
        unreadable=_unreadable(infos, kept, fp.unreadable),
        pairs=[pair_record(dups, q, kept_infos) for q in range(len(dups))],
        groups=_groups(infos, kept, dups),
    )


def run_audit(
    data: str | Path,
    against: str | Path | None = None,
    out_dir: str | Path | None = None,
    threshold: float | None = None,
    examples: int = 12,
    progress: bool = True,
    workers: int | None = None,
    neighbours: int | None = None,
    zoom_neighbours: int | None = None,
) -> AuditResult:
    """Audit a dataset for duplicates within and across its splits.

    Args:
        data: dataset root with train and test split folders (val optional); with `against`,
            any layout: all of it is the test side.
        against: optional second dataset used as the training side.
        out_dir: where to write audit.json, the lists, groups.csv and examples_*.png (None: write nothing).
        threshold: near-duplicate correlation threshold in (0, 1]; None for the calibrated default.
        examples: pairs drawn per kind in the example PNGs (0: no PNGs).
        progress: show a progress bar on stderr.
        workers: processes for decoding and registration (default: up to 4, one per available CPU).
        neighbours: nearest partners per image given the registered second look (`align`);
            None for the default (`Thresholds.neighbours`), 0 to skip it.
        zoom_neighbours: nearest partners of each zoomed view of an image also given the second look;
            None for the default (`Thresholds.zoom_neighbours`), 0 for none.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: bad folders or threshold.
    """
    th = Thresholds()
    if threshold is not None:
        th = replace(th, near_corr=float(threshold))
    if neighbours is not None:
        th = replace(th, neighbours=int(neighbours))
    if zoom_neighbours is not None:
        th = replace(th, zoom_neighbours=int(zoom_neighbours))
    infos, paths, roots = _collect(Path(data), None if against is None else Path(against))
    t0 = time.perf_counter()
    fp = fingerprint_files(paths, workers=workers, progress=progress)
    t1 = time.perf_counter()
    roles = [infos[k].role for k in fp.index]
    pairs = oriented(classify(fp, th, workers), roles)
    t2 = time.perf_counter()
    result = _findings(roots, th, infos, fp, pairs)
    result.timings = {"fingerprint": t1 - t0, "match": t2 - t1}
    if out_dir is not None:
        out = Path(out_dir)
        result.out_dir = out
        write_lists(result, out)
        t3 = time.perf_counter()
        if examples > 0:
            write_examples(pairs, [infos[k] for k in fp.index], fp.paths, th, out, examples)
        result.timings.update(report=t3 - t2, figures=time.perf_counter() - t3)
        result.timings["total"] = time.perf_counter() - t0
        write_json(result, out)
    return result
