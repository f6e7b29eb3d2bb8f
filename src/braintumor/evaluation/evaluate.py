"""`braintumor evaluate`: run a checkpoint over a labelled test folder and score it, optionally leak-aware.

The scans go through the model's own `ScanPipeline` (the preprocessing it was trained with, read
through a decode cache) in batches; probabilities are softmax(logits / temperature) with the
checkpoint's temperature. With `exclude_leaks_from`, the leakage audit marks every test scan that
has a copy or near-copy in the training data, and every figure is also given for the clean rest.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data import DatasetIndex, DecodeCache, Sample, check_readable, discover
from braintumor.data.dataset import ScanDataset
from braintumor.data.pipeline import ScanPipeline
from braintumor.evaluation.bootstrap import BootstrapSettings
from braintumor.evaluation.examples import distinct, gradcam_overlays, worst_misclassified
from braintumor.evaluation.result import EvaluationResult, Example, score
from braintumor.models import load_model
from braintumor.models.default import resolve_model_path
from braintumor.models.tta import tta_mode
from braintumor.training.logits import predict_logits

MIN_CLASS_SCANS = 20  # below this many scans of a class in the leak-free subset, its figures get a warning


@dataclass(frozen=True)
class EvaluateOptions:
    """Settings of one evaluation (built by the CLI from its flags)."""

    batch_size: int = 32  # scans per forward pass; 32-128 on CPU, more on a GPU
    cache_dir: Path | None = None  # decode cache folder; None = a temporary one, deleted afterwards
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)  # confidence-interval settings
    workers: int = 0  # DataLoader worker processes; 0 decodes in this process
    device: str | None = None  # "cpu", "cuda", ...; None = cuda when available
    examples: int = 12  # confident mistakes shown in the report
    progress: bool = True  # tqdm bars on stderr
    class_map: dict[str, str] | None = None  # {folder: model class} for folders named otherwise (parse_class_map)


def test_samples(index: DatasetIndex) -> tuple[str, list[Sample]]:
    """The split to score: "test" when the folder has one, else "all" (a folder of class folders)."""
    for split in ("test", "all"):
        if split in index.splits:
            return split, index.splits[split]
    raise ValueError(
        f"{index.root}: no test split and no class folders at the top (found splits: {', '.join(index.splits)}); "
        "point --data at the test folder itself, e.g. .../Testing"
    )


def check_classes(samples: list[Sample], class_names: list[str], data: Path) -> None:
    """ValueError naming the class folders the model does not know (a subset of its classes is fine)."""
    unknown = sorted({s.label for s in samples} - set(class_names))
    if unknown:
        raise ValueError(
            f"{data}: class folder(s) {unknown} unknown to the model, whose classes are {class_names}; "
            "rename them to the model's class names or remove them"
        )


@contextlib.contextmanager
def _decode_cache(cache_dir: Path | None, pipeline: ScanPipeline) -> Iterator[DecodeCache]:
    # Without a cache folder, a temporary cache still saves the second decode (readability check, then model).
    if cache_dir is not None:
        yield DecodeCache(cache_dir, pipeline.preprocess)
        return
    with tempfile.TemporaryDirectory(prefix="braintumor-eval-") as tmp:
        yield DecodeCache(tmp, pipeline.preprocess)


def leak_flags(
    index: DatasetIndex, split: str, samples: list[Sample], against: Path, audit_dir: Path, progress: bool
) -> tuple[list[bool | None], dict, np.ndarray]:
    """Audit the scored split against a training folder.

    Returns:
        Per sample True (leaks), False (clean) or None (unaudited); the audit's summary; and per sample a
        duplicate-group id (scans that are copies of one another, directly or through a training image,
        share one), for intervals that resample groups rather than scans.
    """
    from braintumor.data.audit import run_audit

    # Audit only the scored split's folder, not its sibling training split inside the same root.
    root = index.root / Path(index.relpath(samples[0].path)).parts[0] if split == "test" else index.root
    result = run_audit(root, against=against, out_dir=audit_dir, progress=progress)
    leaking, clean = set(result.test_leaking), set(result.test_clean)
    flags: list[bool | None] = []
    groups = np.empty(len(samples), dtype=np.int64)
    lone = max(result.groups.values(), default=-1) + 1
    for n, s in enumerate(samples):
        rel = s.path.relative_to(root).as_posix()
        flags.append(True if rel in leaking else False if rel in clean else None)
        groups[n] = result.groups.get(rel, lone + n)  # a scan the audit could not read stands alone
    info = {
        "against": str(against),
        "audit_dir": str(audit_dir),
        "test_leaking": sum(f is True for f in flags),
        "test_clean": sum(f is False for f in flags),
        "not_audited": sum(f is None for f in flags),
        "duplicate_groups": len(np.unique(groups)),
    }
    return flags, info, groups


def _examples(loaded, cache, samples, files, labels, probs, k) -> tuple[list[Example], str]:
    """The k most confident mistakes, one per scan: the image the model saw and, via the CAM hook, an overlay."""
    rows = distinct(worst_misclassified(labels, probs, None), lambda i: cache.get(samples[i].path), k)
    names = loaded.class_names
    preds = [int(probs[i].argmax()) for i in rows]
    overlays, note = gradcam_overlays(loaded, [samples[i].path for i in rows], preds)
    examples = [
        Example(files[i], names[labels[i]], names[p], float(probs[i, p]), cache.get(samples[i].path), ov)
        for i, p, ov in zip(rows, preds, overlays, strict=True)
    ]
    return examples, note


def evaluate(
    model: str | Path | None,
    data: str | Path,
    *,
    exclude_leaks_from: str | Path | None = None,
    audit_dir: Path | None = None,
    options: EvaluateOptions | None = None,
) -> EvaluationResult:
    """Score a checkpoint on a labelled test folder.

    Args:
        model: checkpoint folder or file; None or "default" for the shipped model.
        data: a folder of class folders (e.g. .../Testing) or a dataset root with a test split.
        exclude_leaks_from: training folder; when given, the audit marks leaking test scans and the
            figures are also computed on the leak-free subset.
        audit_dir: where the audit writes its files (required with `exclude_leaks_from`).
        options: batch size, cache, bootstrap, device, progress.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: bad model or data folders, unknown classes,
        or no readable scan.
    """
    opts = options or EvaluateOptions()
    if exclude_leaks_from is not None:  # checked before the slow part, not after it
        if audit_dir is None:
            raise ValueError("evaluate: audit_dir is required with exclude_leaks_from")
        if not Path(exclude_leaks_from).is_dir():
            raise FileNotFoundError(f"{exclude_leaks_from}: training folder for the leak audit not found")
        scored, against = Path(data).resolve(), Path(exclude_leaks_from).resolve()
        if scored == against or against in scored.parents:
            # every test scan would match itself: the report would call the whole test set leaking
            raise ValueError(
                f"{exclude_leaks_from}: the leak audit's training folder contains the scored folder {data}; "
                "point --exclude-leaks-from at the training split only (e.g. DATA/Training)"
            )
    model_path = resolve_model_path(model)
    loaded = load_model(model_path, map_location="cpu")
    index = discover(data, merge=opts.class_map)
    split, samples = test_samples(index)
    check_classes(samples, loaded.class_names, index.root)
    # With a leak audit the intervals wait for its duplicate groups (`_add_leak_free`), not drawn twice.
    bootstrap = None if exclude_leaks_from is not None else opts.bootstrap
    result, good = _predict_and_score(loaded, model_path, index, split, samples, opts, bootstrap)
    if exclude_leaks_from is not None:
        _add_leak_free(result, index, split, good, Path(exclude_leaks_from), audit_dir, opts)
    return result


def _predict_and_score(
    loaded, model_path, index, split, samples, opts, bootstrap
) -> tuple[EvaluationResult, list[Sample]]:
    """Read, predict and score the readable samples; returns the result and those samples."""
    pipeline = ScanPipeline.for_model(loaded)
    with _decode_cache(opts.cache_dir, pipeline) as cache:
        good, bad = check_readable(samples, cache=cache, progress=opts.progress)
        if not good:
            raise ValueError(f"{index.root}: none of the {len(samples)} scans could be read (e.g. {bad[0][1]})")
        dataset = ScanDataset(good, loaded.class_names, cache, pipeline.transform)
        logits = predict_logits(
            loaded,
            dataset,
            batch_size=opts.batch_size,
            workers=opts.workers,
            device=opts.device,
            progress=opts.progress,
        )
        labels = np.asarray(dataset.targets, dtype=np.int64)
        result = EvaluationResult(
            model={
                "path": str(model_path),
                "arch": loaded.arch,
                "image_size": loaded.image_size,
                "tta": tta_mode(loaded.meta),
            },
            data=index.root,
            split=split,
            class_names=list(loaded.class_names),
            files=[index.relpath(s.path) for s in good],
            labels=labels,
            logits=logits,
            temperature=loaded.temperature,
            metrics=score(labels, logits, loaded.class_names, loaded.temperature, bootstrap),
            unreadable=[(str(p), r) for p, r in bad],
        )
        result.examples, note = _examples(loaded, cache, good, result.files, labels, result.probs, opts.examples)
    absent = [c for c, row in result.metrics["per_class"].items() if row["support"] == 0]
    if absent:
        result.notes.append(
            f"The test folder has no scans of {', '.join(absent)}: recall and F1 of "
            f"{'that class' if len(absent) == 1 else 'those classes'} are n/a and macro averages leave "
            f"{'it' if len(absent) == 1 else 'them'} out; predictions of {'it' if len(absent) == 1 else 'them'} "
            "still count as errors."
        )
    if note:
        result.notes.append(note)
    return result, good


def _add_leak_free(result, index, split, good, against: Path, audit_dir: Path, opts: EvaluateOptions) -> None:
    result.leaks, result.audit, groups = leak_flags(index, split, good, against, audit_dir, opts.progress)
    # Copies inside the test set are not independent draws: redo the intervals resampling whole groups.
    result.metrics = score(
        result.labels, result.logits, result.class_names, result.temperature, opts.bootstrap, groups=groups
    )
    flag_of = dict(zip(result.files, result.leaks, strict=True))
    for ex in result.examples:
        ex.leaks = flag_of[ex.file]
    mask = result.clean_mask
    if not mask.any():
        result.leak_free = {"n": 0}
        result.notes.append("Every test scan has a copy or near-copy in the training data: no leak-free subset.")
        return
    result.leak_free = score(
        result.labels[mask], result.logits[mask], result.class_names, result.temperature, opts.bootstrap, groups[mask]
    )
    # Leaks are rarely spread evenly: say when the clean subset leaves a class with too few scans to judge.
    few = {c: r["support"] for c, r in result.leak_free["per_class"].items() if 0 < r["support"] < MIN_CLASS_SCANS}
    if few:
        listed = ", ".join(f"{c} {n}" for c, n in few.items())
        result.notes.append(
            f"The leak-free subset keeps fewer than {MIN_CLASS_SCANS} scans of some classes ({listed}); "
            "their leak-free per-class figures and their weight in macro averages rest on very few scans."
        )


def run_evaluation(
    model: str | Path | None,
    data: str | Path,
    out_dir: str | Path,
    *,
    exclude_leaks_from: str | Path | None = None,
    options: EvaluateOptions | None = None,
) -> EvaluationResult:
    """`evaluate`, then write metrics.json, predictions.csv and report.html (and audit/ when leak-aware) to out_dir."""
    from braintumor.evaluation.outputs import write_metrics, write_predictions
    from braintumor.evaluation.report import write_report

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder; --out names the folder to write into")
    result = evaluate(model, data, exclude_leaks_from=exclude_leaks_from, audit_dir=out / "audit", options=options)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(result, out / "metrics.json")
    write_predictions(result, out / "predictions.csv")
    write_report(result, out / "report.html")
    return result
