"""The LightningModule: one classifier from the registry, its loss, metrics and optimiser."""

from __future__ import annotations

import warnings

import lightning as L
import matplotlib

matplotlib.use("Agg")  # headless: figures go to TensorBoard, never to a window
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from braintumor.models import create_model
from braintumor.models.checkpoint import load_model
from braintumor.models.default import resolve_model_path
from braintumor.training.config import TrainConfig


def classifier_head(model: nn.Module) -> nn.Module:
    """The last Linear layer: the part that stays trainable while the backbone is frozen."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__}: no Linear classifier head found")
    return linears[-1]


# Config fields that decide which scans land in validation.
SPLIT_FIELDS = ("data", "exclude", "class_map", "merge", "groups_csv", "val_fraction", "seed")


def init_weights(model: nn.Module, cfg: TrainConfig, class_names: list[str]) -> None:
    """Copy a trained model's weights into `model` (timm's --initial-checkpoint): fine-tune an earlier run.

    The architecture, channels and classes must match; the input size may differ (convolutions do not
    care), so a run trained at one resolution can go on at a higher one.
    """
    source = load_model(resolve_model_path(cfg.init_from))
    where = f"--init-from {cfg.init_from}"
    if source.arch != cfg.arch:
        raise ValueError(f"{where}: that model is a '{source.arch}', this run trains a '{cfg.arch}'")
    if source.in_chans != cfg.in_chans:
        raise ValueError(f"{where}: that model takes {source.in_chans} channel(s), this run {cfg.in_chans}")
    if source.class_names != class_names:
        raise ValueError(f"{where}: that model's classes {source.class_names} differ from this data's {class_names}")
    model.load_state_dict(source.model.state_dict())
    before = source.meta.get("config") or {}
    changed = [k for k in SPLIT_FIELDS if k in before and before[k] != getattr(cfg, k)]
    if changed:
        warnings.warn(
            f"{where}: that model was trained with other {', '.join(changed)}; this run's validation split "
            "may hold scans it trained on, which inflates validation figures",
            stacklevel=2,
        )


def label_set_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-scan -log P(the true class is in the set): the partial-label likelihood (Jin & Ghahramani 2002).

    `masks` is (N, C) boolean, True for the classes each scan may be. With one class per row it is
    plain cross-entropy; with several, the model may spread the probability among them as it likes.
    """
    log_p = logits.float().log_softmax(dim=1).masked_fill(~masks, float("-inf"))
    return -torch.logsumexp(log_p, dim=1)


class ClassifierModule(L.LightningModule):
    """Cross-entropy classifier; logs loss, accuracy, macro-F1 and a confusion matrix per epoch.

    Training batches may also hold coarsely labelled scans (target -1 - i: "one of label_sets[i]"),
    which add the partial-label loss `label_set_loss`; validation uses exact labels only.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        class_names: list[str],
        class_weights: list[float] | None = None,
        label_sets: list[tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {"cfg": cfg.to_dict(), "class_names": class_names, "class_weights": class_weights, "label_sets": label_sets}
        )
        self.cfg = cfg
        self.class_names = list(class_names)
        n = len(class_names)
        # --init-from replaces every weight, so ImageNet's are not fetched (offline they may not exist), and a
        # resumed run takes its weights from the Lightning checkpoint instead.
        warm_start = bool(cfg.init_from) and not cfg.resume
        self.model = create_model(
            cfg.arch,
            num_classes=n,
            in_chans=cfg.in_chans,
            pretrained=cfg.pretrained and not cfg.init_from,
            drop_rate=cfg.drop_rate,
        )
        if warm_start:
            init_weights(self.model, cfg, self.class_names)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        sets = [[c in group for c in self.class_names] for group in (label_sets or [])]
        self.register_buffer("set_masks", torch.tensor(sets, dtype=torch.bool).reshape(-1, n), persistent=False)
        metrics = MetricCollection(
            {"acc": MulticlassAccuracy(n, average="micro"), "macro_f1": MulticlassF1Score(n, average="macro")}
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.val_confmat = MulticlassConfusionMatrix(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def training_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The weighted cross-entropy of exact labels, pooled with the label-set loss of coarse ones.

        A batch of exact labels gets exactly `loss_fn`. Otherwise it is the weighted mean over all scans:
        an exact label weighs its class weight, a coarse one 1 (the mean class weight, roughly).
        """
        exact = y >= 0
        if bool(exact.all()):
            return self.loss_fn(logits, y)
        coarse = ~exact
        total = label_set_loss(logits[coarse], self.set_masks[-1 - y[coarse]]).sum()
        weight = coarse.sum().float()  # each coarse scan weighs 1
        if bool(exact.any()):
            w = self.loss_fn.weight
            ce = F.cross_entropy(
                logits[exact], y[exact], weight=w, label_smoothing=self.cfg.label_smoothing, reduction="none"
            )
            total = total + ce.sum()
            weight = weight + (w[y[exact]].sum() if w is not None else exact.sum())
        return total / weight

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.training_loss(logits, y)
        exact = y >= 0
        if bool(exact.any()):
            self.train_metrics.update(logits.detach()[exact], y[exact])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        # Logging the metric objects (not computed values) lets Lightning compute and sync them at the
        # same point on every rank; computing them in an epoch-end hook deadlocks DDP.
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", self.loss_fn(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.val_metrics.update(logits, y)
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, prog_bar=True)
        self.val_confmat.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        self._log_confusion_matrix()
        self.val_confmat.reset()

    def _log_confusion_matrix(self) -> None:
        matrix = self.val_confmat.compute()  # a collective in DDP: every rank must call it
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.sanity_checking or not self.trainer.is_global_zero or not hasattr(experiment, "add_figure"):
            return
        fig, _ = self.val_confmat.plot(val=matrix, labels=self.class_names)
        experiment.add_figure("val/confusion_matrix", fig, global_step=self.current_epoch)
        plt.close(fig)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        groups: list = params
        if self.cfg.freeze_epochs > 0:
            # two groups, head first: FreezeBackbone holds the backbone at lr 0, then sets its fine-tuning lr
            head = {id(p) for p in classifier_head(self.model).parameters()}
            groups = [
                {"params": [p for p in params if id(p) in head]},
                {"params": [p for p in params if id(p) not in head], "lr": 0.0},
            ]
        optimizer = torch.optim.Adam(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=self.cfg.lr_factor, patience=self.cfg.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/macro_f1"}}
