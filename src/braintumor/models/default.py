"""`--model default`: the model shipped inside the package."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"


def resolve_model_path(spec: str | Path | None) -> Path:
    """Map a `--model` value to a checkpoint path: None or "default" mean the shipped model.

    Raises:
        FileNotFoundError: the path does not exist, or this install ships no default model.
    """
    if spec is None or str(spec) == "default":
        if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{DEFAULT_MODEL_DIR}: this install has no default model; pass --model PATH to a trained run "
                "(a folder holding model.safetensors and model.json, from `braintumor train`)"
            )
        return DEFAULT_MODEL_DIR
    path = Path(spec).expanduser()
    if not path.exists() and not path.with_suffix(".safetensors").exists():
        raise FileNotFoundError(f"{path}: model not found (expected a run folder or a .safetensors checkpoint)")
    return path
