"""Hostile and broken requests: each gets a 4xx with a clear JSON message, and the server keeps answering."""

from __future__ import annotations

import io
import socket
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from braintumor.serve import ServeSettings


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png() -> bytes:
    """A valid-looking PNG whose header claims 100,000 x 100,000 px (10 gigapixels) with almost no data."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1, 1), 128).save(buf, format="PNG")
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buf, format="GIF")
    return buf.getvalue()


def _broken_files(samples_dir: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (content, a phrase the error must contain)."""
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "truncated"),
        "notes.jpg": (b"patient notes, not an image\n" * 20, "plain text"),
        "random.dcm": (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "DICOM"),
        "one_pixel.png": (_tiny_png(), "1x1 px"),
        "bomb.png": (_bomb_png(), "megapixel"),
        "animation.gif": (_gif(), "GIF"),
    }


def _assert_healthy(client: httpx.Client) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize(
    "name", ["empty.jpg", "truncated.jpg", "notes.jpg", "random.dcm", "one_pixel.png", "bomb.png", "animation.gif"]
)
def test_broken_file_gives_422_naming_the_problem(client: httpx.Client, samples_dir: Path, name: str) -> None:
    content, phrase = _broken_files(samples_dir)[name]
    r = client.post("/api/v1/predict", files=[("files", (name, content, "image/jpeg"))])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"] == "no uploaded file could be read as a scan"
    (problem,) = body["files"]
    assert problem["file"] == name and phrase.lower() in problem["error"].lower()
    _assert_healthy(client)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", b'{"files": "scan.jpg"}'), ("text/plain", b"hello"), ("image/jpeg", b"\xff\xd8\xff")],
)
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str, body: bytes) -> None:
    r = client.post("/api/v1/predict", content=body, headers={"content-type": content_type})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]
    _assert_healthy(client)


def test_50_mb_upload_is_413(client: httpx.Client) -> None:
    big = b"\xff\xd8\xff" + bytes(50 * 2**20)
    r = client.post("/api/v1/predict", files=[("files", ("huge.jpg", big, "image/jpeg"))])
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]
    _assert_healthy(client)


def test_file_over_per_file_limit_within_request_limit_is_413(client: httpx.Client) -> None:
    r = client.post("/api/v1/predict", files=[("files", ("big.jpg", bytes(3 * 2**20), "image/jpeg"))])
    assert r.status_code == 413 and "per-file" in r.json()["detail"]
    _assert_healthy(client)


def test_1000_files_in_one_request_is_413(client: httpx.Client) -> None:
    files = [("files", (f"scan{i}.jpg", b"\xff\xd8\xff\xe0", "image/jpeg")) for i in range(1000)]
    r = client.post("/api/v1/predict", files=files)
    assert r.status_code == 413 and "at most 8 files" in r.json()["detail"]
    _assert_healthy(client)


def test_per_file_limit_names_the_file(client: httpx.Client) -> None:
    r = client.post("/api/v1/predict", files=[("files", ("big_scan.jpg", bytes(3 * 2**20), "image/jpeg"))])
    assert r.status_code == 413 and "'big_scan.jpg'" in r.json()["detail"]


def test_parts_without_a_name_count_towards_the_file_limit(client: httpx.Client) -> None:
    # 200,000 header-only parts (3 MB) used to be parsed and kept, since only named parts were counted
    body = b"--BB\r\nX: y\r\n\r\n\r\n" * 200_000 + b"--BB--\r\n"
    r = client.post("/api/v1/predict", content=body, headers={"content-type": "multipart/form-data; boundary=BB"})
    assert r.status_code == 413 and "at most 8 files" in r.json()["detail"]
    _assert_healthy(client)


@pytest.mark.parametrize("name", ["脑扫描.jpg", "Müller_T1.jpg", "😀.jpg", "ñ é ü.jpg"])
def test_non_ascii_file_names_are_kept(client: httpx.Client, samples_dir: Path, name: str) -> None:
    # browsers send file names as UTF-8 inside the multipart header
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    r = client.post("/api/v1/predict", files=[("files", (name, jpeg, "image/jpeg"))])
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["file"] == name
    r = client.post("/api/v1/explain", files={"file": (name, jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text


def test_file_name_with_control_characters_is_named_in_the_refusal(client: httpx.Client, samples_dir: Path) -> None:
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    r = client.post("/api/v1/predict", files=[("files", ("scan\u202egpj.exe", jpeg, "image/jpeg"))])
    assert r.status_code == 400 and "control characters" in r.json()["detail"] and "scan" in r.json()["detail"]


def test_large_scans_are_shrunk_to_max_side_first(serve_factory, tiny_checkpoint: Path, samples_dir: Path) -> None:
    # Memory per file is bounded by max_side, not by the 100-megapixel decoding limit; the map has that size.
    big = Image.open(sorted(samples_dir.glob("glioma/*.jpg"))[0]).convert("L").resize((900, 600))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    server = serve_factory(ServeSettings(model=str(tiny_checkpoint), max_side=300))  # no OOD check to refuse it
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/api/v1/explain", files={"file": ("big.png", buf.getvalue(), "image/png")})
        assert r.status_code == 200, r.text
        assert Image.open(io.BytesIO(r.content)).size == (300, 200)
        r = c.post("/api/v1/predict", files=[("files", ("big.png", buf.getvalue(), "image/png"))])
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] is not None


@pytest.mark.parametrize(
    ("content_type", "body", "phrase"),
    [
        ("multipart/form-data", b"--x\r\n\r\n", "boundary"),
        (
            "multipart/form-data; boundary=abc",
            b'--abc\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n\xff\xd8\xff',
            "ends before",
        ),
        ("multipart/form-data; boundary=abc", b"this is not multipart at all", "malformed"),
        (
            "multipart/form-data; boundary=abc",
            b'--abc\r\nContent-Disposition: form-data; name="comment"\r\n\r\nhi\r\n--abc--\r\n',
            "no file",
        ),
    ],
)
def test_malformed_multipart_is_400(client: httpx.Client, content_type: str, body: bytes, phrase: str) -> None:
    r = client.post("/api/v1/predict", content=body, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    assert phrase in r.json()["detail"]
    _assert_healthy(client)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "scans/../a.jpg", ".."])
def test_path_like_file_names_are_400(client: httpx.Client, samples_dir: Path, name: str) -> None:
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    r = client.post("/api/v1/predict", files=[("files", (name, jpeg, "image/jpeg"))])
    assert r.status_code == 400
    assert "path" in r.json()["detail"]
    _assert_healthy(client)


def test_old_browser_windows_path_is_reduced_to_the_file_name(client: httpx.Client, samples_dir: Path) -> None:
    # Old Internet Explorer sent the whole client path; python-multipart keeps only its last part.
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    r = client.post("/api/v1/predict", files=[("files", ("C:\\scans\\a.jpg", jpeg, "image/jpeg"))])
    assert r.status_code == 200 and r.json()["predictions"][0]["file"] == "a.jpg"


def test_security_headers_and_closed_cors(client: httpx.Client) -> None:
    for path in ("/", "/api/v1/health", "/static/app.js"):
        h = client.get(path, headers={"origin": "https://evil.example"}).headers
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "http" not in csp  # no external source anywhere
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
        assert "access-control-allow-origin" not in h
    preflight = client.options(
        "/api/v1/predict", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert client.get("/api/v1/model").headers["cache-control"] == "no-store"


def test_cors_allows_only_configured_origins(serve_factory, tiny_checkpoint: Path) -> None:
    from braintumor.serve import ServeSettings

    server = serve_factory(ServeSettings(model=str(tiny_checkpoint), cors_origins=("https://lab.example",)))
    with httpx.Client(base_url=server.url) as c:
        ok = c.get("/api/v1/health", headers={"origin": "https://lab.example"})
        assert ok.headers["access-control-allow-origin"] == "https://lab.example"
        other = c.get("/api/v1/health", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_concurrent_requests_all_succeed(server, samples_dir: Path) -> None:
    jpeg = sorted(samples_dir.glob("meningioma/*.jpg"))[0].read_bytes()

    def one(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            return c.post("/api/v1/predict", files=[("files", (f"s{i}.jpg", jpeg, "image/jpeg"))]).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(16)))
    assert codes == [200] * 16


def _slow_upload(url: str, declared: int = 1_000_000) -> socket.socket:
    """A client that sends the headers and the first boundary of a large upload, then nothing more."""
    parts = urlparse(url)
    s = socket.create_connection((parts.hostname, parts.port))
    s.sendall(
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=BB\r\n"
        b"Content-Length: %d\r\n\r\n--BB\r\n" % declared
    )
    return s


def test_slow_clients_neither_lock_out_whole_requests_nor_stay_forever(
    serve_factory, tiny_checkpoint: Path, samples_dir: Path
) -> None:
    # 18 connections trickling bytes once made every predict 503 for as long as they kept sending
    settings = ServeSettings(model=str(tiny_checkpoint), concurrency=1, max_queue=1, upload_timeout=3)
    server = serve_factory(settings)
    started = time.monotonic()
    slow = [_slow_upload(server.url) for _ in range(18)]
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            time.sleep(0.5)  # the server has read the slow requests' headers
            for s in slow[:6]:
                s.sendall(b"C")  # still sending, a byte at a time
            for _ in range(3):
                r = c.post("/api/v1/predict", files=[("files", ("a.jpg", jpeg, "image/jpeg"))])
                assert r.status_code == 200, r.text
        for s in slow:  # each slow upload is answered 408 when its time is up, and its connection closed
            s.settimeout(30)
            answer = b""
            while chunk := s.recv(65536):  # until the server closes the connection
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"longer than 3 s" in answer
        assert time.monotonic() - started < 20
    finally:
        for s in slow:
            s.close()


def test_bytes_being_received_are_bounded_for_all_uploads_together(
    serve_factory, tiny_checkpoint: Path, samples_dir: Path
) -> None:
    mb = 2**20
    settings = ServeSettings(
        model=str(tiny_checkpoint), max_file_bytes=mb, max_request_bytes=mb, max_buffered_bytes=mb, upload_timeout=20
    )
    server = serve_factory(settings)
    holding = _slow_upload(server.url, declared=mb)
    holding.sendall(b'Content-Disposition: form-data; name="files"; filename="x.jpg"\r\n\r\n' + bytes(1_040_000))
    jpeg = sorted(samples_dir.glob("glioma/*.jpg"))[0].read_bytes()
    assert len(jpeg) > 9_000  # with 1,040,000 bytes held, this one does not fit in the 1 MiB being received
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            deadline = time.monotonic() + 10
            while (r := c.post("/api/v1/predict", files=[("files", ("a.jpg", jpeg, "image/jpeg"))])).status_code != 503:
                assert time.monotonic() < deadline, "the held bytes never counted"
                time.sleep(0.1)
            assert "receiving too many uploads" in r.json()["detail"]
            assert c.get("/api/v1/health").status_code == 200  # health is never queued
            holding.close()
            deadline = time.monotonic() + 10
            while (r := c.post("/api/v1/predict", files=[("files", ("a.jpg", jpeg, "image/jpeg"))])).status_code != 200:
                assert time.monotonic() < deadline, "the bytes were not given back after the client left"
                time.sleep(0.1)
    finally:
        holding.close()
