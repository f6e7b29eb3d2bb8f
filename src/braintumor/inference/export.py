"""Export a checkpoint to ONNX, with the preprocessing contract written into the file's metadata.

The graph takes "input", float32 (batch, C, S, S) already normalised, with a dynamic batch axis, and gives
"logits" (batch, K) and "features" (batch, D), what the OOD check reads: the penultimate activations, then
the channel statistics of the contract's `ood_stats_layer` when it names one. Scan ->
tensor stays outside the graph (crop to the head, pad to square, resize, normalise: `ScanPipeline`), so the
metadata states every setting another runtime needs to reproduce it: `metadata_props` keys start with
"braintumor." and hold JSON values (see `contract_of`).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from braintumor import DISCLAIMER, __version__
from braintumor.inference.backends import LogitsAndFeatures
from braintumor.models import LoadedModel
from braintumor.models.tta import inference_model, tta_mode

FORMAT = "braintumor-onnx"
FORMAT_VERSION = 1
OPSET = 18


def contract_of(loaded: LoadedModel) -> dict[str, Any]:
    """What a runtime needs besides the graph: classes, input size, preprocessing, normalization, temperature."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": loaded.arch,
        "class_names": list(loaded.class_names),
        "image_size": loaded.image_size,
        "in_chans": loaded.in_chans,
        "input_layout": "NCHW float32, pixels scaled to [0, 1] then (x - mean) / std per channel",
        "preprocess": dict(loaded.preprocess),
        "normalization": dict(loaded.normalization),
        "temperature": loaded.temperature,
        "tta": tta_mode(loaded.meta),  # already inside the graph: a runtime feeds one view per scan
        "probabilities": "softmax(logits / temperature)",
        "weights_sha256": loaded.meta.get("weights_sha256"),
        "metrics": loaded.meta.get("metrics"),
        "caveats": loaded.meta.get("caveats") or {},
        "braintumor_version": __version__,
        "disclaimer": DISCLAIMER,
    }


def export_onnx(loaded: LoadedModel, out: str | Path, *, opset: int = OPSET, stats_layer: str | None = None) -> Path:
    """Write `loaded` as an ONNX file with a dynamic batch axis and the contract in its metadata.

    Args:
        loaded: a checkpoint from `braintumor.models.load_model`.
        out: the `.onnx` path to write (its folder is created).
        opset: ONNX opset version.
        stats_layer: the layer whose channel statistics the OOD check also reads (its detector's
            `stats_layer`); recorded in the contract as `ood_stats_layer`.

    Returns:
        The path written.
    """
    import onnx

    out = Path(out)
    if out.is_dir():  # checked before the slow export, not after it
        raise IsADirectoryError(f"{out}: is a folder; give the .onnx file to write, e.g. {out / 'model.onnx'}")
    wrapper = LogitsAndFeatures(inference_model(loaded).cpu(), stats_layer).eval()
    example = torch.zeros(2, loaded.in_chans, loaded.image_size, loaded.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter reports its progress on stdout/stderr; a CLI command should print only its own result.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        program = torch.onnx.export(
            wrapper,
            (example,),
            None,
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits", "features"],
            dynamic_shapes={"x": {0: batch}},
        )
    proto = program.model_proto
    for key, value in {**contract_of(loaded), "ood_stats_layer": stats_layer}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"braintumor.{key}", json.dumps(value, ensure_ascii=False)
    proto.doc_string = f"braintumor {loaded.arch} classifier ({', '.join(loaded.class_names)}). {DISCLAIMER}"
    onnx.checker.check_model(proto)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(proto, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left behind on failure
    return out


def export_with_ood(loaded: LoadedModel, model_path: str | Path, out: str | Path) -> Path:
    """`export_onnx` for a checkpoint with its stored OOD check: the graph computes the features that check
    reads, and the check's two files are copied beside the `.onnx` file, where the ONNX predictor looks."""
    import shutil

    from braintumor.models.ood import load_ood, ood_paths

    stored = load_ood(model_path, loaded.meta.get("weights_sha256"), tta=tta_mode(loaded.meta, model_path))
    out = export_onnx(loaded, out, stats_layer=stored.stats_layer if stored else None)
    for src, dst in zip(ood_paths(model_path), ood_paths(out), strict=True):
        if src.is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
    return out


def read_contract(path: str | Path) -> dict[str, Any]:
    """The braintumor contract stored in an ONNX file's metadata (graph weights are not loaded).

    Raises:
        ValueError: not an ONNX file, or one not written by `braintumor export`.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a file that is not ONNX
        raise ValueError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key[len("braintumor.") :]: p.value for p in proto.metadata_props if p.key.startswith("braintumor.")}
    try:
        contract = {k: json.loads(v) for k, v in props.items()}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt braintumor metadata ({exc})") from None
    if contract.get("format") != FORMAT:
        raise ValueError(f"{path}: not written by `braintumor export` (no braintumor metadata)")
    if int(contract.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: written by a newer braintumor (format {contract['format_version']}); upgrade")
    return contract


def parity(loaded: LoadedModel, onnx_path: str | Path, scans: list) -> float:
    """Largest |p_onnx - p_torch| over the calibrated probabilities of `scans` (a list of `Scan`).

    Both runtimes get the same tensors from the model's `ScanPipeline`, so the figure measures the export
    alone (operator numerics), not preprocessing.
    """
    import numpy as np

    from braintumor.data.pipeline import ScanPipeline
    from braintumor.inference.backends import OnnxBackend, TorchBackend
    from braintumor.models.head import softmax

    pipeline = ScanPipeline.for_model(loaded)
    batch = np.stack([pipeline(s).numpy() for s in scans])
    torch_logits, _ = TorchBackend(inference_model(loaded)).run(batch)
    onnx_logits, _ = OnnxBackend(onnx_path).run(batch)
    t = loaded.temperature
    return float(np.abs(softmax(onnx_logits, t) - softmax(torch_logits, t)).max())


SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"  # the scans shipped with the package


@dataclass(frozen=True)
class ExportReport:
    """What `export_checked` wrote, and how far ONNX Runtime's probabilities are from PyTorch's."""

    path: Path
    max_difference: float  # largest |p_onnx - p_torch| over the sample scans (nan: no samples shipped)
    scans: int

    def summary(self) -> str:
        return f"wrote {self.path} (max |p_onnx - p_torch| on {self.scans} sample scans: {self.max_difference:.2e})"


def export_checked(loaded: LoadedModel, model_path: str | Path, out: str | Path) -> ExportReport:
    """`export_with_ood`, then the parity of the graph with the PyTorch model on the package's sample scans."""
    from braintumor.io import read_scan

    written = export_with_ood(loaded, model_path, out)
    samples = sorted(SAMPLES_DIR.rglob("*.jpg"))
    diff = parity(loaded, written, [read_scan(p) for p in samples]) if samples else float("nan")
    return ExportReport(written, diff, len(samples))
