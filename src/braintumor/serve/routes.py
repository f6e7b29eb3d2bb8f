"""The /api/v1 routes: predict, explain, model, health."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from braintumor import CAM_METHODS, DISCLAIMER, __version__
from braintumor.inference import ACCEPTED_FORMATS
from braintumor.serve.schemas import (
    ErrorOut,
    ExplanationOut,
    HealthOut,
    LimitsOut,
    ModelOut,
    PredictionOut,
    PredictResponse,
)
from braintumor.serve.security import require_token
from braintumor.serve.service import ServiceDep
from braintumor.serve.uploads import ApiError


def _multipart(field: str, many: bool) -> dict:
    """OpenAPI request body of an upload endpoint (the body is parsed by `Service.receive`, not by FastAPI)."""
    item = {"type": "string", "format": "binary"}
    schema = {"type": "array", "items": item} if many else item
    body = {"type": "object", "required": [field], "properties": {field: schema}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


def _errors(*codes: int) -> dict:
    """OpenAPI entries for the refusals a route can give, each a JSON `ErrorOut`."""
    return {code: {"model": ErrorOut} for code in codes}


_UPLOAD_ERRORS = (400, 408, 413, 415, 422, 503)  # malformed, too slow, too large, not multipart, unreadable, busy

public = APIRouter(prefix="/api/v1", tags=["service"])
api = APIRouter(prefix="/api/v1", tags=["prediction"], dependencies=[Depends(require_token)], responses=_errors(401))


@public.head("/health", include_in_schema=False)  # some load balancers probe with HEAD
@public.get("/health", response_model=HealthOut)
async def health(request: Request) -> HealthOut:
    """Liveness and readiness: answers without a token, for load balancers and container health checks."""
    return HealthOut(model_loaded=getattr(request.app.state, "service", None) is not None, version=__version__)


@api.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra=_multipart("files", many=True),
    responses=_errors(*_UPLOAD_ERRORS),
)
async def predict(request: Request, service: ServiceDep) -> PredictResponse:
    """Classify one or many scans (JPEG, PNG, BMP, TIFF, WEBP, DICOM, NIfTI; a volume's middle slice).

    The format is found from the content, not the name or content type. A file that cannot be read gets an
    `error`, a refused one (colour photo, blank, out-of-distribution) `in_distribution: false` and no label;
    when no file at all can be read the answer is 422.
    """
    uploads = await service.receive(request)
    async with service.admitted():
        predictions = await service.run(service.predict, uploads)
    if all(p.error for p in predictions):
        raise ApiError(422, "no uploaded file could be read as a scan", [p.to_dict() for p in predictions])
    return PredictResponse(
        predictions=[PredictionOut(**p.to_dict()) for p in predictions],
        model_id=service.predictor.card.get("model_id"),
        ood_check="available" if service.predictor.ood_available else "unavailable",
    )


@api.post(
    "/explain",
    response_class=Response,
    openapi_extra=_multipart("file", many=False),
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "class activation map overlay at the scan's own size (larger scans: shrunk to the "
            "server's max_side first)",
            "headers": {
                "X-Braintumor-Label": {"description": "predicted class, percent-encoded", "schema": {"type": "string"}},
                "X-Braintumor-Confidence": {"description": "its calibrated probability", "schema": {"type": "number"}},
                "X-Braintumor-Target": {"description": "the class the map explains", "schema": {"type": "string"}},
                "X-Braintumor-Disclaimer": {"description": "research use only", "schema": {"type": "string"}},
            },
        },
        **_errors(*_UPLOAD_ERRORS, 501),
    },
)
async def explain(
    request: Request,
    service: ServiceDep,
    target: str | None = Query(None, description="class to explain (default: the predicted class)"),
    method: Literal[CAM_METHODS] = Query(CAM_METHODS[0], description="CAM method"),
    colorbar: bool = Query(False, description="add a colour bar on the right"),
) -> Response:
    """Class activation map overlay (PNG) of one scan. The predicted label and confidence come in
    `X-Braintumor-*` headers (the label percent-encoded); a refused or unreadable scan gets 422 and no map."""
    if target is not None and target not in service.predictor.class_names:
        raise ApiError(
            400, f"unknown target class; the model's classes are: {', '.join(service.predictor.class_names)}"
        )
    if service.predictor.checkpoint is None:  # an ONNX-only model has no gradients to compute a map with
        raise ApiError(501, "explanations need the PyTorch checkpoint; this server runs an ONNX file only")
    uploads = await service.receive(request, fields=("file", "files"))
    if len(uploads) != 1:
        raise ApiError(400, "send exactly one file to explain")
    async with service.admitted():
        prediction, png = await service.run(service.explain, uploads[0], target, method, colorbar)
    if not png:
        reason = "the file could not be read" if prediction.error else "the image was refused"
        raise ApiError(422, f"no explanation: {reason}", [prediction.to_dict()])
    headers = {
        "X-Braintumor-Label": quote(prediction.label or ""),
        "X-Braintumor-Confidence": f"{prediction.confidence:.6f}",
        "X-Braintumor-Target": quote(target or prediction.label or ""),
        "X-Braintumor-Disclaimer": DISCLAIMER,
    }
    return Response(png, media_type="image/png", headers=headers)


@api.get("/model", response_model=ModelOut)
async def model(service: ServiceDep) -> ModelOut:
    """The model behind the API: classes, figures stored with it, version, OOD check, upload limits."""
    card = service.predictor.card
    limits = service.limits
    return ModelOut(
        **{k: card.get(k) for k in ("arch", "image_size", "in_chans", "temperature", "model_id", "created_utc")},
        tta=card.get("tta", "none"),
        class_names=card.get("class_names") or service.predictor.class_names,
        metrics=card.get("metrics"),
        caveats=service.predictor.caveats,
        backend=card.get("backend", "torch"),
        ood=card.get("ood", {"available": service.predictor.ood_available}),
        version=__version__,
        accepted_formats=list(ACCEPTED_FORMATS),
        limits=LimitsOut(**vars(limits)),
        explanation=ExplanationOut(
            available=service.predictor.checkpoint is not None,
            methods=list(CAM_METHODS),
            default_method=CAM_METHODS[0],
            layer=service.predictor.cam_layer,
        ),
    )
