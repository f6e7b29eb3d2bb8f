"""Fit the out-of-distribution detector of a checkpoint on labelled training and validation scans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from braintumor.data.discovery import Sample
from braintumor.data.pipeline import ScanPipeline
from braintumor.io import ScanReadError, read_scan
from braintumor.models import LoadedModel, list_models, model_info
from braintumor.models.head import LogitsAndFeatures
from braintumor.models.ood import OODDetector, fit_from_features
from braintumor.models.tta import inference_model, tta_mode


def default_stats_layer(arch: str) -> str | None:
    """The architecture's registered `ood_stats_layer` (None for unknown or unregistered architectures)."""
    return model_info(arch).ood_stats_layer if arch in list_models() else None


def fit_ood(
    loaded_model: LoadedModel,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    percentile: float = 99.0,
    *,
    batch_size: int = 32,
    progress: bool = False,
    stats_layer: str | None = "auto",
) -> OODDetector:
    """Fit the Mahalanobis detector on the training scans' features; threshold at `percentile` of validation.

    Args:
        loaded_model: the checkpoint (from `braintumor.models.load_model`).
        train_samples: labelled training scans (class means and covariance come from these).
        val_samples: held-out scans of the same distribution; the threshold is the `percentile`-th
            percentile of their scores, so about (100 - percentile) % of such scans will be refused.
        percentile: in [50, 100].
        batch_size: scans per forward pass.
        progress: show tqdm progress bars on stderr.
        stats_layer: also read that layer's channel statistics; "auto": the architecture's registered
            `ood_stats_layer`; None: penultimate features only.

    Returns:
        The detector; `info["unreadable"]` lists files that could not be read (they are left out), and
        `info["weights_sha256"]` ties it to these weights. Save it with `detector.save(checkpoint_path)`.

    Raises:
        ValueError: too few readable scans, or a percentile outside [50, 100].
    """
    if stats_layer == "auto":
        stats_layer = default_stats_layer(loaded_model.arch)
    # the network split exactly as the predictor's backends and the ONNX export split it
    extractor = _Extractor(LogitsAndFeatures(inference_model(loaded_model), stats_layer).eval(), loaded_model)
    train, train_labels, bad_train = _features(extractor, train_samples, "training", progress, batch_size)
    val, _, bad_val = _features(extractor, val_samples, "validation", progress, batch_size)
    detector = fit_from_features(train, train_labels, val, percentile)
    unreadable = [{"file": str(p), "error": e} for p, e in bad_train + bad_val]
    info = {
        **detector.info,
        "weights_sha256": loaded_model.meta.get("weights_sha256"),
        "tta": tta_mode(loaded_model.meta),  # features of averaged views differ from one view's
        "stats_layer": stats_layer,
        "features": "penultimate" + (f" + channel mean and std of {stats_layer}" if stats_layer else ""),
        "unreadable": unreadable,
    }
    return OODDetector(detector.means, detector.precision, detector.threshold, info)


class _Extractor:
    """OOD features of decoded scans: the model's pipeline, then the network's penultimate features."""

    def __init__(self, net: LogitsAndFeatures, loaded_model: LoadedModel) -> None:
        self.net, self.pipeline = net, ScanPipeline.for_model(loaded_model)
        self.device = next(net.parameters()).device

    def __call__(self, scans: Sequence) -> np.ndarray:
        batch = torch.stack([self.pipeline(s) for s in scans]).to(self.device)
        with torch.inference_mode():
            return self.net(batch)[1].float().cpu().numpy()


def _features(
    extractor: _Extractor, samples: Sequence[Sample], what: str, progress: bool, step: int
) -> tuple[np.ndarray, list[str], list[tuple[Path, str]]]:
    """Features of the readable samples in chunks (bounded memory), their labels, and the unreadable ones."""
    rows: list[np.ndarray] = []
    labels: list[str] = []
    bad: list[tuple[Path, str]] = []
    bar = tqdm(total=len(samples), desc=f"features ({what})", unit="scan", disable=not progress)
    for start in range(0, len(samples), step):
        scans = []
        for s in samples[start : start + step]:
            try:
                scans.append(read_scan(s.path))
                labels.append(s.label)
            except ScanReadError as exc:
                bad.append((s.path, exc.reason))
        if scans:
            rows.append(extractor(scans))
        bar.update(min(step, len(samples) - start))
    bar.close()
    if not rows:
        raise ValueError(f"no readable {what} scans to fit the out-of-distribution detector on")
    return np.concatenate(rows), labels, bad


def fit_ood_on_dataset(
    loaded_model: LoadedModel,
    data: str | Path,
    percentile: float = 99.0,
    *,
    val_fraction: float = 0.15,
    max_per_class: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = False,
    stats_layer: str | None = "auto",
    groups_csv: str | Path | None = None,
    class_map: dict[str, str] | None = None,
) -> OODDetector:
    """Fit the detector on a dataset folder: its "train" split (or all of it) and its "val" split.

    Without a "val" split, `val_fraction` of the training scans (stratified, seeded) are held out for the
    threshold, keeping each duplicate group of `groups_csv` (from `braintumor data audit DATA`) on one side:
    a held-out scan with a copy among the fitted ones scores low and pulls the threshold down.
    `max_per_class` caps the scans used per class (seeded choice), to fit quickly on big sets.
    The test split is never used: it stays for measuring the refusal rate honestly.
    """
    from braintumor.data import discover, train_val_split
    from braintumor.data.splits import load_groups_csv

    index = discover(data, merge=class_map)
    train = index.splits.get("train") or index.splits.get("all")
    if not train:
        raise ValueError(f"{data}: no 'train' split (or plain class folders) to fit the out-of-distribution check on")
    train = _cap(train, max_per_class, seed)
    val = index.splits.get("val")
    if val:
        val = _cap(val, max_per_class, seed)
    else:
        groups = load_groups_csv(groups_csv, index.root) if groups_csv else None
        train, val = train_val_split(train, val_fraction=val_fraction, seed=seed, groups=groups)
    detector = fit_ood(
        loaded_model, train, val, percentile, batch_size=batch_size, progress=progress, stats_layer=stats_layer
    )
    detector.info["fitted_on"] = str(data)
    if groups_csv and not index.splits.get("val"):
        detector.info["threshold_split"] = f"group-aware ({groups_csv})"
    return detector


def fit_ood_on_training_split(
    loaded_model: LoadedModel,
    model_path: str | Path,
    percentile: float = 99.0,
    *,
    data: str | None = None,
    relocate: Mapping[str, str] | None = None,
    max_per_class: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = False,
    stats_layer: str | None = "auto",
) -> OODDetector:
    """Fit the detector on the model's own training split; threshold on its own validation split.

    The split is rebuilt from the training config in the model's sidecar, as `braintumor calibrate`
    does: the same exclusions (e.g. the audit's test leaks), duplicate groups and seed. So nothing that
    leaks into a test set shapes the detector, and no copy of a threshold scan sits among the fit scans,
    which would pull the threshold down. `max_per_class` caps the training scans per class (seeded);
    the whole validation split sets the threshold.

    Raises:
        ValueError: the model records no training config, or its data changed since training.
    """
    from braintumor.training.calibrate import rebuilt_split

    split = rebuilt_split(loaded_model, Path(model_path), data=data, relocate=relocate, progress=progress)
    with split as (prepared, _):
        train, val = _cap(prepared.train, max_per_class, seed), prepared.val
    detector = fit_ood(
        loaded_model, train, val, percentile, batch_size=batch_size, progress=progress, stats_layer=stats_layer
    )
    detector.info["fitted_on"] = "the model's own training split; threshold on its validation split"
    return detector


def _cap(samples: Sequence[Sample], per_class: int | None, seed: int) -> list[Sample]:
    if not per_class:
        return list(samples)
    rng = np.random.default_rng(seed)
    kept: list[Sample] = []
    for label in sorted({s.label for s in samples}):
        of_class = [s for s in samples if s.label == label]
        idx = sorted(rng.choice(len(of_class), size=min(per_class, len(of_class)), replace=False))
        kept += [of_class[i] for i in idx]
    return kept


@dataclass(frozen=True)
class OodFitReport:
    """A fitted and saved out-of-distribution check: the detector and the two files written."""

    detector: OODDetector
    written: tuple[Path, Path]

    def summary(self) -> str:
        d, i = self.detector, self.detector.info
        return (
            f"OOD check: threshold {d.threshold:.3f} = {i['percentile']:g}th percentile of {i['n_val']} "
            f"validation scans (fitted on {i['n_train']}); wrote {self.written[0]} and {self.written[1]}"
        )


def fit_and_save(
    loaded_model: LoadedModel,
    model_path: str | Path,
    percentile: float = 99.0,
    *,
    data: str | Path | None = None,
    groups_csv: str | Path | None = None,
    relocate: Mapping[str, str] | None = None,
    class_map: dict[str, str] | None = None,
    **fit_args,
) -> OodFitReport:
    """Fit the check on `data`'s train split (`fit_ood_on_dataset`) or, without `data`, on the model's own
    training split (`fit_ood_on_training_split`), and save it beside the checkpoint at `model_path`.

    Raises:
        ValueError: `groups_csv` without `data`, and what the fit functions raise.
    """
    if data is None:
        if groups_csv or class_map:
            raise ValueError(
                "--ood-groups-csv and --class-map go with --ood-from DATA (--ood-own-split uses the run's own)"
            )
        detector = fit_ood_on_training_split(loaded_model, model_path, percentile, relocate=relocate, **fit_args)
    else:
        detector = fit_ood_on_dataset(
            loaded_model, data, percentile, groups_csv=groups_csv, class_map=class_map, **fit_args
        )
    return OodFitReport(detector, tuple(detector.save(model_path)))
