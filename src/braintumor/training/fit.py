"""`fit(cfg)`: a training run from config to exported, calibrated checkpoint.

Reads like a table of contents; early stopping, LR schedule, checkpoints and logging are
Lightning callbacks, not branches in a loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from braintumor import PATH_ERRORS
from braintumor.metrics.classification import calibrated_summary
from braintumor.models import model_info
from braintumor.models.checkpoint import save_checkpoint
from braintumor.models.tta import with_tta
from braintumor.training.callbacks import FreezeBackbone, RandomState, WeightsFingerprint
from braintumor.training.config import TrainConfig
from braintumor.training.datamodule import PreparedData, ScanDataModule, inverse_frequency, normalization
from braintumor.training.logits import loader_logits
from braintumor.training.module import SPLIT_FIELDS, ClassifierModule

MONITOR = "val/macro_f1"


def _precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    on_gpu = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "16-mixed" if on_gpu else "32-true"


def build_trainer(cfg: TrainConfig, out: Path, progress: bool = True) -> L.Trainer:
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=MONITOR, mode="max"),
        # Lightning's save_last only writes when a best checkpoint is written; --resume needs every epoch.
        ModelCheckpoint(dirpath=out / "checkpoints", filename="last", enable_version_counter=False),
        EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.early_stop_patience),
        LearningRateMonitor(logging_interval="epoch"),
        WeightsFingerprint(out / "fingerprints"),
        RandomState(),
    ]
    if cfg.freeze_epochs > 0:
        callbacks.append(FreezeBackbone(cfg.freeze_epochs, cfg.finetune_lr_factor))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    devices = cfg.devices if not str(cfg.devices).isdigit() else int(cfg.devices)
    return L.Trainer(
        default_root_dir=out,
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=_precision(cfg),
        logger=TensorBoardLogger(out, name="tensorboard", version=""),
        callbacks=callbacks,
        limit_train_batches=cfg.limit_train_batches,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=10,
        deterministic=False,
    )


def _write_data_report(out: Path, data: PreparedData) -> None:
    (out / "unreadable.txt").write_text(
        "".join(f"{p}\t{r}\n" for p, r in data.unreadable), encoding="utf-8", errors=PATH_ERRORS
    )
    report = {
        "class_names": data.class_names,
        "train": len(data.train),
        "val": len(data.val),
        "excluded": data.excluded,
        "unreadable": len(data.unreadable),
        "weak": len(data.weak),
        "label_sets": {k: list(v) for k, v in data.label_sets.items()},
    }
    (out / "data.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8", errors=PATH_ERRORS
    )


def _export(cfg: TrainConfig, out: Path, module: ClassifierModule, dm: ScanDataModule, best: str) -> dict:
    """Load the best weights, fit the temperature on validation, write the safetensors checkpoint."""
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]  # our own Lightning ckpt
    module.load_state_dict(state)
    module.to("cpu")
    net = with_tta(module.model, cfg.tta)
    logits, labels = loader_logits(
        net, dm.val_dataloader(), device=torch.device("cpu"), num_classes=len(module.class_names)
    )
    metrics = {**calibrated_summary(logits, labels, module.class_names), "tta": cfg.tta}
    mean, std = normalization(cfg)
    save_checkpoint(
        out / "model",
        module.model,
        arch=cfg.arch,
        num_classes=len(module.class_names),
        in_chans=cfg.in_chans,
        class_names=module.class_names,
        image_size=cfg.image_size,
        preprocess=dm.cache.preprocess.to_dict(),
        normalization={"mean": list(mean), "std": list(std), "per_scan_norm": cfg.per_scan_norm},
        temperature=metrics["temperature"],
        tta=cfg.tta,
        config=cfg.to_dict(),
        metrics={"validation": metrics},
    )
    (out / "val_metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8", errors=PATH_ERRORS
    )
    return metrics


# What a resumed run must keep: a changed split would put scans the run trained on into validation (and
# calibrate would then choose on them); a changed model or input would not load or would mean another run.
RESUME_FIXED = (*SPLIT_FIELDS, "weak_data", "weak_labels", "arch", "in_chans", "image_size", "crop_to_head")
RESUME_FIXED += ("per_scan_norm", "pretrained", "init_from", "freeze_epochs")


def _check_resume(cfg: TrainConfig, out: Path) -> None:
    saved = out / "config.yaml"
    if not saved.is_file():
        raise ValueError(f"{out}: no config.yaml to resume with")
    before = TrainConfig.from_sources(saved)
    changed = before.differences(cfg, RESUME_FIXED)
    if changed:
        raise ValueError(
            f"{out}: --resume must keep the run's data split, model and input as they were "
            f"({'; '.join(changed)}); give the same flags (see {saved}) or start a new run with another --out"
        )


def resume_epoch(last: Path) -> int:
    """The last finished epoch stored in a Lightning checkpoint, read without unpickling code.

    `weights_only=True` loads tensors, numbers and containers only: a `last.ckpt` planted in a run folder
    cannot run code when the run is resumed.

    Raises:
        ValueError: the file is truncated or damaged, holds Python objects, or is not a training checkpoint.
    """
    import pickle
    import zipfile

    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"{last}: refused: the checkpoint holds Python objects beyond tensors and numbers, which could run "
            "code; braintumor's checkpoints never do. Delete it, or start a new run with another --out"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{last}: cannot be read as a checkpoint; it is truncated or damaged ({type(exc).__name__}). "
            "Resume from checkpoints/best.ckpt by copying it over last.ckpt, or start a new run with another --out"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("epoch"), int):
        raise ValueError(f"{last}: not a Lightning training checkpoint (no epoch counter)")
    return checkpoint["epoch"]


def fit(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train per `cfg`; returns the run folder (checkpoint in OUT/model.safetensors + model.json).

    `cfg.test_dir` is recorded, not scored: the CLI scores it once after training (evaluation sits above
    training and training never chooses anything on it).
    """
    out = Path(cfg.out)
    last = out / "checkpoints" / "last.ckpt"
    if last.exists() and not cfg.resume:
        raise ValueError(f"{out}: holds a previous run; pass --resume to continue it or choose another --out")
    if cfg.resume and not last.exists():
        raise ValueError(f"{out}: nothing to resume (no checkpoints/last.ckpt)")
    # what can be checked in a moment is checked before anything is written or read
    for folder in (cfg.data, cfg.weak_data, cfg.test_dir):
        if folder and not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: dataset folder not found")
    model_info(cfg.arch)  # an unknown architecture, before every scan is read
    if cfg.resume:
        _check_resume(cfg, out)
        resume_epoch(last)  # a damaged or foreign checkpoint is refused before any scan is read
    L.seed_everything(cfg.seed, workers=True)
    dm = ScanDataModule(cfg, progress=progress)
    data = dm.prepare()
    weights = inverse_frequency(data.train, data.class_names) if cfg.class_weights else None
    # built before the run folder is written: an offline ImageNet download fails here, leaving nothing behind
    module = ClassifierModule(cfg, data.class_names, weights, label_sets=list(data.label_sets.values()))
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    _write_data_report(out, data)
    trainer = build_trainer(cfg, out, progress)
    if cfg.resume:
        print(f"resuming at epoch {resume_epoch(last) + 1} from {last}", flush=True)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if cfg.resume else None, weights_only=True)
    if trainer.global_rank == 0:
        dm.setup("validate")
        _export(cfg, out, module, dm, trainer.checkpoint_callback.best_model_path)
    return out


def is_global_zero() -> bool:
    """Whether this process is rank 0 of the last run (the one that exported; the only one in a 1-device run)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
