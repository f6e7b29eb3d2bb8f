"""Pydantic schemas of the API's responses (they are also its OpenAPI documentation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from braintumor import DISCLAIMER


class PredictionOut(BaseModel):
    """The result for one uploaded file."""

    file: str = Field(description="the uploaded file's name")
    label: str | None = Field(description="predicted class; null when refused or unreadable (no tumour claim)")
    probabilities: dict[str, float] = Field(description="class -> calibrated probability; empty when refused")
    confidence: float | None = Field(description="probability of the predicted class")
    in_distribution: bool = Field(description="false when the input was refused or could not be read")
    error: str | None = Field(description="why the file could not be read")
    ood_score: float | None = Field(description="distance to the training data; null when the check is unavailable")
    note: str | None = Field(description="why the input was refused (not a brain MRI scan)")
    caveat: str | None = Field(
        default=None,
        description="a known weakness of the model for this answer (from its model card); show it with the label",
    )
    disclaimer: str = DISCLAIMER


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]
    model_id: str | None = Field(description="first 12 hex digits of the model weights' SHA-256")
    ood_check: Literal["available", "unavailable"] = Field(
        description="whether an out-of-distribution detector is stored with the model; when unavailable, "
        "in_distribution only reflects the colour/blank input gate"
    )
    disclaimer: str = DISCLAIMER


class FileProblem(BaseModel):
    file: str
    error: str | None = None
    note: str | None = None


class ErrorOut(BaseModel):
    """Every refusal: a message saying what to change, and per-file reasons where there are files."""

    detail: str
    files: list[FileProblem] | None = None


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    model_loaded: bool
    version: str


class ExplanationOut(BaseModel):
    """What `POST /api/v1/explain` draws: the CAM methods it takes and the layer it hooks."""

    available: bool = Field(description="false when the server runs an ONNX file only (no gradients)")
    methods: list[str]
    default_method: str
    layer: str | None = Field(description="module path of the hooked layer, from the architecture's registry entry")


class LimitsOut(BaseModel):
    max_file_bytes: int
    max_request_bytes: int
    max_files: int


class ModelOut(BaseModel):
    arch: str | None
    class_names: list[str]
    image_size: int | None
    in_chans: int | None
    temperature: float | None
    tta: str = Field("none", description="test-time augmentation: none, or hflip (scan and mirror image averaged)")
    model_id: str | None
    created_utc: str | None
    metrics: dict[str, Any] | None = Field(description="the figures stored in the checkpoint, if any")
    caveats: dict[str, str] = Field(
        default_factory=dict, description="class -> a known weakness of that answer (from the model card)"
    )
    backend: str
    ood: dict[str, Any] = Field(description="out-of-distribution check: available, threshold, percentile...")
    version: str = Field(description="braintumor version")
    accepted_formats: list[str]
    limits: LimitsOut
    explanation: ExplanationOut
    disclaimer: str = DISCLAIMER
