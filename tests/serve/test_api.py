"""Happy paths of the service against a real uvicorn server: predict, explain, model, health, docs."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from braintumor import DISCLAIMER
from braintumor.explain import METHODS
from braintumor.models import model_info

KEYS = {
    "file",
    "label",
    "probabilities",
    "confidence",
    "in_distribution",
    "error",
    "ood_score",
    "note",
    "caveat",
    "disclaimer",
}


def _sample(samples_dir: Path, cls: str = "glioma") -> Path:
    return sorted(samples_dir.glob(f"{cls}/*.jpg"))[0]


def test_health_and_model(client: httpx.Client) -> None:
    health = client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model_loaded"] is True
    model = client.get("/api/v1/model").json()
    assert model["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert model["arch"] == "simple_cnn" and model["image_size"] == 64 and len(model["model_id"]) == 12
    assert model["tta"] == "none"
    assert model["caveats"] == {c: f"test caveat for {c}" for c in model["class_names"]}
    assert model["ood"]["available"] is True and model["ood"]["percentile"] == 100
    assert model["disclaimer"] == DISCLAIMER
    assert model["limits"] == {"max_file_bytes": 2 * 2**20, "max_request_bytes": 8 * 2**20, "max_files": 8}
    assert {"jpg", "dcm", "nii.gz"} <= set(model["accepted_formats"])
    assert model["explanation"] == {
        "available": True,
        "methods": list(METHODS),  # the API offers exactly what the explainer has, LayerCAM first
        "default_method": "layercam",
        "layer": model_info("simple_cnn").gradcam_layer,
    }


def test_predict_many_jpegs(client: httpx.Client, samples_dir: Path) -> None:
    paths = sorted(samples_dir.glob("*/*.jpg"))
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    r = client.post("/api/v1/predict", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ood_check"] == "available" and body["disclaimer"] == DISCLAIMER
    preds = body["predictions"]
    assert [p["file"] for p in preds] == [p.name for p in paths]  # order kept
    for p in preds:
        assert set(p) == KEYS and p["disclaimer"] == DISCLAIMER
        assert p["in_distribution"] is True and p["error"] is None and p["ood_score"] is not None
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["confidence"] == pytest.approx(p["probabilities"][p["label"]])
        assert p["caveat"] == f"test caveat for {p['label']}"  # the served model's card says one per class


@pytest.mark.parametrize("fixture", ["dicom_bytes", "nifti_bytes"])
def test_predict_dicom_and_nifti(client: httpx.Client, request: pytest.FixtureRequest, fixture: str) -> None:
    data = request.getfixturevalue(fixture)
    name = "scan.dcm" if fixture == "dicom_bytes" else "volume.nii"
    # The client's content type is ignored: the format is sniffed from the bytes.
    r = client.post("/api/v1/predict", files=[("files", (name, data, "application/octet-stream"))])
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert pred["file"] == name and pred["error"] is None
    assert pred["label"] in pred["probabilities"]


def test_explain_returns_overlay_at_scan_size(client: httpx.Client, samples_dir: Path) -> None:
    path = _sample(samples_dir)
    r = client.post("/api/v1/explain", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-braintumor-label"] in {"glioma", "meningioma", "notumor", "pituitary"}
    assert 0 < float(r.headers["x-braintumor-confidence"]) <= 1
    overlay = Image.open(io.BytesIO(r.content))
    assert overlay.size == Image.open(path).size and overlay.mode == "RGB"
    assert np.asarray(overlay).std(axis=2).mean() > 1  # coloured heatmap blended in, not the gray scan alone


def test_explain_target_class_and_unknown_target(client: httpx.Client, samples_dir: Path) -> None:
    path = _sample(samples_dir, "notumor")
    files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
    ok = client.post("/api/v1/explain", params={"target": "pituitary", "method": "gradcam++"}, files=files)
    assert ok.status_code == 200 and ok.content.startswith(b"\x89PNG")
    bad = client.post("/api/v1/explain", params={"target": "astrocytoma"}, files=files)
    assert bad.status_code == 400 and "glioma" in bad.json()["detail"]


def test_explain_refuses_a_photo(client: httpx.Client, photo_jpeg: bytes) -> None:
    r = client.post("/api/v1/explain", files={"file": ("cat.jpg", photo_jpeg, "image/jpeg")})
    assert r.status_code == 422
    assert "refused" in r.json()["detail"] and "colour photograph" in r.json()["files"][0]["note"]


def test_photo_and_noise_are_refused_without_a_label(client: httpx.Client, photo_jpeg: bytes) -> None:
    gray_photo = np.asarray(Image.open(io.BytesIO(photo_jpeg)).convert("L"))
    noise = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    buf_gray, buf_noise = io.BytesIO(), io.BytesIO()
    Image.fromarray(gray_photo).save(buf_gray, format="PNG")
    Image.fromarray(noise).save(buf_noise, format="PNG")
    files = [
        ("files", ("cat.jpg", photo_jpeg, "image/jpeg")),
        ("files", ("cat_gray.png", buf_gray.getvalue(), "image/png")),
        ("files", ("noise.png", buf_noise.getvalue(), "image/png")),
    ]
    preds = client.post("/api/v1/predict", files=files).json()["predictions"]
    for p in preds:
        assert p["in_distribution"] is False and p["label"] is None and p["probabilities"] == {}
    assert "colour photograph" in preds[0]["note"]  # the input gate, before the model
    assert "out-of-distribution" in preds[1]["note"] and "out-of-distribution" in preds[2]["note"]  # the OOD check


def test_page_and_docs(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Research use only" in page.text
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/explain", "/api/v1/health", "/api/v1/model"} <= set(schema["paths"])
    (method,) = [p for p in schema["paths"]["/api/v1/explain"]["post"]["parameters"] if p["name"] == "method"]
    assert method["schema"]["enum"] == list(METHODS) and method["schema"]["default"] == "layercam"
    body = schema["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert client.get("/docs").status_code == 200
    # each route documents the refusals it can give, and only those
    paths = schema["paths"]
    assert set(paths["/api/v1/model"]["get"]["responses"]) == {"200", "401"}
    assert "501" not in paths["/api/v1/predict"]["post"]["responses"]
    assert {"413", "415", "422", "503"} <= set(paths["/api/v1/predict"]["post"]["responses"])
    explain = paths["/api/v1/explain"]["post"]["responses"]
    assert "501" in explain and "X-Braintumor-Target" in explain["200"]["headers"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]  # the /docs "Authorize" button
    assert client.head("/api/v1/health").status_code == 200 and client.head("/").status_code == 200


def test_mixed_request_reports_bad_files_per_item(client: httpx.Client, samples_dir: Path) -> None:
    path = _sample(samples_dir)
    files = [("files", (path.name, path.read_bytes(), "image/jpeg")), ("files", ("notes.txt", b"hello", "text/plain"))]
    r = client.post("/api/v1/predict", files=files)
    assert r.status_code == 200
    good, bad = r.json()["predictions"]
    assert good["label"] is not None and bad["label"] is None
    assert "plain text" in bad["error"]


def test_an_onnx_only_server_says_it_cannot_explain(serve_factory, tiny_checkpoint, samples_dir, tmp_path_factory):
    from braintumor.inference import export_onnx
    from braintumor.models import load_model
    from braintumor.serve.settings import ServeSettings

    onnx = export_onnx(load_model(tiny_checkpoint), tmp_path_factory.mktemp("onnx_only") / "tiny.onnx")
    server = serve_factory(ServeSettings(model=str(onnx), backend="onnx"))
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/api/v1/model").json()["explanation"]["available"] is False
        scan = _sample(samples_dir)
        r = c.post("/api/v1/explain", files={"file": (scan.name, scan.read_bytes(), "image/jpeg")})
        assert r.status_code == 501 and "PyTorch checkpoint" in r.json()["detail"]
        assert (
            c.post("/api/v1/predict", files={"files": (scan.name, scan.read_bytes(), "image/jpeg")}).status_code == 200
        )
