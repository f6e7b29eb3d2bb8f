"""Build a Predictor from `--model default|PATH` with the PyTorch or ONNX Runtime backend.

PyTorch: the checkpoint (`<stem>.safetensors` + `<stem>.json`). ONNX: `<stem>.onnx` written by
`braintumor export` beside the checkpoint, or any `.onnx` path (its metadata carries the preprocessing
contract, so the checkpoint is only needed for Grad-CAM). Either way the OOD detector is read from
`<stem>.ood.*` beside the file, when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from braintumor.data.pipeline import ScanPipeline
from braintumor.data.preprocess import Preprocess
from braintumor.inference.backends import OnnxBackend, TorchBackend
from braintumor.inference.export import read_contract
from braintumor.inference.predictor import Predictor
from braintumor.models import checkpoint_paths, load_model, read_metadata
from braintumor.models.default import resolve_model_path
from braintumor.models.ood import OODDetector, load_ood
from braintumor.models.tta import inference_model, tta_mode

BACKENDS = ("torch", "onnx")


def load_predictor(
    model: str | Path | None = "default",
    *,
    backend: str = "torch",
    threads: int | None = None,
    batch_size: int = 32,
    channels_last: bool = False,
) -> Predictor:
    """A Predictor for `model` ("default", a run folder, a checkpoint file or stem, or an `.onnx` file).

    Args:
        model: what `--model` names.
        backend: "torch" or "onnx".
        threads: intra-op threads for the backend (None: its default, one per core).
        batch_size: scans per forward pass.
        channels_last: PyTorch only: NHWC memory format (see `TorchBackend`).

    Raises:
        FileNotFoundError: no such model, or no `.onnx` export for the ONNX backend.
        ValueError: unknown backend; corrupt checkpoint, export or detector (CheckpointError is a ValueError).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    path = resolve_model_path(model)
    if backend == "onnx" or path.suffix == ".onnx":
        return _onnx_predictor(path, threads, batch_size)
    loaded = load_model(path)
    ood = load_ood(path, loaded.meta.get("weights_sha256"), tta=tta_mode(loaded.meta, path))
    pipeline = ScanPipeline.for_model(loaded)
    return Predictor(
        TorchBackend(
            inference_model(loaded),
            threads=threads,
            channels_last=channels_last,
            stats_layer=ood.stats_layer if ood else None,
        ),
        pipeline,
        loaded.class_names,
        loaded.temperature,
        ood=ood,
        card=model_card(loaded.meta, "torch", ood),
        batch_size=batch_size,
        checkpoint=path,
        caveats=caveats_of(loaded.meta, path),
    )


def _onnx_predictor(path: Path, threads: int | None, batch_size: int) -> Predictor:
    if path.suffix == ".onnx":
        onnx_path = path
        stem = path.with_suffix("")
        checkpoint = stem if checkpoint_paths(stem)[1].is_file() else None
    else:
        weights, _ = checkpoint_paths(path)
        onnx_path, checkpoint = weights.with_suffix(".onnx"), path
        if not onnx_path.is_file():
            raise FileNotFoundError(
                f"{onnx_path}: no ONNX export of this model; make it with `braintumor export --model {path}`"
            )
    contract = read_contract(onnx_path)
    if checkpoint is not None:
        _check_export_is_current(onnx_path, contract, read_metadata(checkpoint), checkpoint)
    ood = load_ood(onnx_path, contract.get("weights_sha256"), tta=tta_mode(contract, onnx_path))
    if ood is not None and ood.stats_layer != contract.get("ood_stats_layer"):
        raise ValueError(
            f"{onnx_path}: the graph's OOD features (statistics of {contract.get('ood_stats_layer') or 'no layer'}) "
            f"do not match its out-of-distribution detector ({ood.stats_layer or 'penultimate only'}); "
            "re-run `braintumor export`"
        )
    size, chans = int(contract["image_size"]), int(contract["in_chans"])
    pipeline = ScanPipeline.from_settings(contract["preprocess"], contract["normalization"], chans, size)
    backend = OnnxBackend(onnx_path, threads=threads)
    # what the pipeline will feed, against what the graph takes (a hand-edited contract fails here, not later)
    backend.check_contract(onnx_path, chans, size, len(contract["class_names"]))
    return Predictor(
        backend,
        pipeline,
        contract["class_names"],
        contract["temperature"],
        ood=ood,
        card=model_card(contract, "onnx", ood),
        batch_size=batch_size,
        checkpoint=checkpoint,
        caveats=caveats_of(contract, onnx_path),
    )


# What `calibrate` and hand edits change in a sidecar without touching the weights; an ONNX export made
# before such a change would quietly answer with the old values.
_CONTRACT_FROM_SIDECAR = ("class_names", "image_size", "in_chans", "preprocess", "normalization", "temperature")


def _check_export_is_current(onnx_path: Path, contract: dict, meta: dict, checkpoint: Path) -> None:
    """Refuse an ONNX export whose weights or contract differ from the checkpoint's sidecar beside it."""
    redo = f"re-run `braintumor export --model {checkpoint}`"
    sha = meta.get("weights_sha256")
    if sha and contract.get("weights_sha256") and sha != contract["weights_sha256"]:
        raise ValueError(f"{onnx_path}: exported from other weights than {checkpoint}; {redo}")
    # preprocessing settings compared as settings: older files also held the image size in them
    contract, meta = {**contract, "preprocess": _settings(contract)}, {**meta, "preprocess": _settings(meta)}
    stale = [k for k in _CONTRACT_FROM_SIDECAR if k in meta and contract.get(k) != meta[k]]
    if tta_mode(meta) != contract.get("tta", "none"):
        stale.append("tta")
    if stale:
        raise ValueError(
            f"{onnx_path}: exported before the model's {', '.join(stale)} changed (e.g. by `braintumor calibrate`); "
            f"{redo}"
        )


def _settings(d: dict[str, Any]) -> Any:
    """A sidecar's or contract's preprocessing settings with defaults filled in (as stored when not valid)."""
    try:
        return Preprocess.from_dict(d.get("preprocess") or {}, int(d["image_size"])).to_dict()
    except (KeyError, TypeError, ValueError):
        return d.get("preprocess")


def caveats_of(meta: dict[str, Any], source: object) -> dict[str, str]:
    """The sidecar's `caveats` (class -> known weakness of that answer), checked.

    Raises:
        ValueError: not a mapping of known class names to text, naming `source`.
    """
    caveats = meta.get("caveats") or {}
    names = set(meta.get("class_names") or [])
    if not isinstance(caveats, dict) or not all(
        isinstance(k, str) and k in names and isinstance(v, str) for k, v in caveats.items()
    ):
        raise ValueError(f"{source}: 'caveats' must map class names ({', '.join(sorted(names))}) to text")
    return dict(caveats)


def model_card(meta: dict[str, Any], backend: str, ood: OODDetector | None) -> dict[str, Any]:
    """What the service tells about its model: no file paths, only what identifies and describes it."""
    sha = meta.get("weights_sha256") or ""
    return {
        "arch": meta.get("arch"),
        "class_names": list(meta.get("class_names") or []),
        "image_size": meta.get("image_size"),
        "in_chans": meta.get("in_chans"),
        "temperature": meta.get("temperature"),
        "tta": tta_mode(meta),
        "model_id": sha[:12] or None,
        "created_utc": meta.get("created_utc"),
        "metrics": meta.get("metrics"),
        "caveats": dict(meta.get("caveats") or {}),
        "backend": backend,
        "ood": _ood_card(ood),
    }


def _ood_card(ood: OODDetector | None) -> dict[str, Any]:
    if ood is None:
        return {"available": False, "note": "no out-of-distribution detector is stored with this model"}
    keys = ("method", "features", "fitted_on", "percentile", "n_train", "n_val", "val_refused_share", "created_utc")
    return {"available": True, "threshold": ood.threshold, **{k: ood.info.get(k) for k in keys}}
