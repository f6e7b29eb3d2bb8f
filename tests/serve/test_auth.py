"""Bearer-token access control, exposure checks and settings from the environment."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from braintumor.cli import main
from braintumor.cli.serve import settings_from_env
from braintumor.serve import ServeSettings
from braintumor.serve.settings import check_exposure, is_loopback

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(serve_factory, tiny_checkpoint: Path):
    return serve_factory(ServeSettings(model=str(tiny_checkpoint), api_token=TOKEN))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0123456789abcdef"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_token_is_a_bare_401(secured, samples_dir: Path, headers: dict) -> None:
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    with httpx.Client(base_url=secured.url, headers=headers) as c:
        for r in (
            c.get("/api/v1/model"),
            c.post("/api/v1/predict", files=[("files", ("a.jpg", jpeg, "image/jpeg"))]),
            c.post("/api/v1/explain", files={"file": ("a.jpg", jpeg, "image/jpeg")}),
        ):
            assert r.status_code == 401
            assert r.json() == {"detail": "unauthorized", "files": None}  # the same answer for every failure
            assert r.headers["www-authenticate"] == "Bearer"


def test_right_token_is_accepted_and_health_needs_none(secured, samples_dir: Path) -> None:
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    with httpx.Client(base_url=secured.url, headers={"authorization": f"Bearer {TOKEN}"}) as c:
        assert c.get("/api/v1/model").status_code == 200
        r = c.post("/api/v1/predict", files=[("files", ("a.jpg", jpeg, "image/jpeg"))])
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] is not None
        assert r.json()["ood_check"] == "unavailable"  # the tiny checkpoint has no detector
    with httpx.Client(base_url=secured.url) as c:
        assert c.get("/api/v1/health").status_code == 200  # load balancers probe without credentials
        assert c.get("/").status_code == 200  # the page itself asks for the token


def test_auth_is_checked_before_the_body_is_read(secured) -> None:
    r = httpx.post(f"{secured.url}/api/v1/predict", content=b"x" * 100, headers={"content-type": "text/plain"})
    assert r.status_code == 401  # not 415: an anonymous client learns nothing about the API


def test_exposure_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    check_exposure("127.0.0.1", ServeSettings(), insecure_no_auth=False)
    check_exposure("0.0.0.0", ServeSettings(api_token=TOKEN), insecure_no_auth=False)
    check_exposure("0.0.0.0", ServeSettings(), insecure_no_auth=True)
    with pytest.raises(ValueError, match="BRAINTUMOR_API_TOKEN"):
        check_exposure("0.0.0.0", ServeSettings(), insecure_no_auth=False)


def test_serve_refuses_public_host_without_token(monkeypatch, capsys, tiny_checkpoint: Path) -> None:
    monkeypatch.delenv("BRAINTUMOR_API_TOKEN", raising=False)
    for var in ("BRAINTUMOR_MODEL", "BRAINTUMOR_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    rc = main(["serve", "--model", str(tiny_checkpoint), "--host", "0.0.0.0", "--port", "1"])
    assert rc == 2
    assert "refusing to listen on 0.0.0.0 without access control" in capsys.readouterr().err


def test_settings_from_env() -> None:
    env = {
        "BRAINTUMOR_MODEL": "/models/m",
        "BRAINTUMOR_API_TOKEN": TOKEN,
        "BRAINTUMOR_CORS_ORIGINS": "https://a.example, https://b.example",
        "BRAINTUMOR_MAX_FILE_MB": "5",
        "BRAINTUMOR_MAX_FILES": "3",
    }
    s = settings_from_env(env)
    assert s.model == "/models/m" and s.api_token == TOKEN and s.max_files == 3
    assert s.cors_origins == ("https://a.example", "https://b.example") and s.max_file_bytes == 5 * 2**20
    assert settings_from_env({}) == ServeSettings()
    with pytest.raises(ValueError, match="BRAINTUMOR_MAX_FILES"):
        settings_from_env({"BRAINTUMOR_MAX_FILES": "many"})
    with pytest.raises(ValueError, match="at least 16 characters"):
        settings_from_env({"BRAINTUMOR_API_TOKEN": "short"})
    for var, raw in (("BRAINTUMOR_MAX_FILE_MB", "inf"), ("BRAINTUMOR_MAX_FILE_MB", "nan")):
        with pytest.raises(ValueError, match=f"{var}='{raw}' is not a finite number"):
            settings_from_env({var: raw})
    with pytest.raises(ValueError, match="concurrency 100000 is over 64"):
        settings_from_env({"BRAINTUMOR_CONCURRENCY": "100000"})
    with pytest.raises(ValueError, match="max_side must be at least 256"):
        settings_from_env({"BRAINTUMOR_MAX_SIDE": "10"})
    assert settings_from_env({"BRAINTUMOR_MAX_SIDE": "1024"}).max_side == 1024
