"""Service settings: one frozen object, built from environment variables in `serve/app.py` only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MIN_TOKEN_CHARS = 16  # a shorter bearer token can be guessed; `secrets.token_urlsafe(32)` gives 43
MAX_CONCURRENCY = 64  # worker slots per process; beyond this more slots only add memory, not speed
MIN_SIDE_LIMIT = 256  # px; max_side below this would shrink scans under the model's own input size


@dataclass(frozen=True)
class ServeSettings:
    """Everything the web service is configured with (`braintumor serve` builds it from its flags and variables)."""

    model: str = "default"  # --model: "default", a run folder, a checkpoint or an .onnx file
    backend: str = "torch"  # "torch" or "onnx"
    api_token: str | None = None  # bearer token required on /api (health excepted); None: no auth
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser; empty: same origin only
    max_file_bytes: int = 20 * 2**20  # per uploaded file; MRI slices are 0.02-5 MB, a NIfTI volume up to ~50 MB
    max_request_bytes: int = 64 * 2**20  # per request body, all files together
    max_files: int = 16  # files per request
    concurrency: int = 2  # requests decoded and predicted at once (threads); 1-MAX_CONCURRENCY
    max_queue: int = 16  # whole requests waiting beyond `concurrency`; more get 503 at once
    upload_timeout: float = 60.0  # s; a request body must arrive within this, or 408 (slow clients hold nothing)
    max_buffered_bytes: int = 256 * 2**20  # request bodies being received, all together; beyond: 503
    threads: int | None = None  # intra-op threads of the model; None: one per core
    batch_size: int = 16  # scans per forward pass within one request
    max_side: int = 2048  # px; a larger decoded scan is shrunk to this first, so memory per file is bounded

    def __post_init__(self) -> None:
        if self.api_token is not None and len(self.api_token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"BRAINTUMOR_API_TOKEN must have at least {MIN_TOKEN_CHARS} characters "
                '(make one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        positive = ("max_file_bytes", "max_request_bytes", "max_files", "concurrency", "max_queue", "batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive number, got {self.threads}")
        if self.concurrency > MAX_CONCURRENCY:
            raise ValueError(
                f"concurrency {self.concurrency} is over {MAX_CONCURRENCY}: each slot holds a decoded request in "
                "memory and shares the same CPU cores; use more --workers or machines instead"
            )
        if self.max_side < MIN_SIDE_LIMIT:
            raise ValueError(f"max_side must be at least {MIN_SIDE_LIMIT} px, got {self.max_side}")
        if not 0 < self.upload_timeout < float("inf"):
            raise ValueError(f"upload_timeout must be a positive number of seconds, got {self.upload_timeout}")
        if self.max_request_bytes > self.max_buffered_bytes:
            raise ValueError("the per-request upload limit cannot exceed the bytes buffered for all uploads")
        if self.max_file_bytes > self.max_request_bytes:
            raise ValueError("the per-file upload limit cannot exceed the per-request limit")
        if "*" in self.cors_origins and self.api_token:
            raise ValueError("CORS origin '*' together with a token would let any web site use it; name the origins")


def is_loopback(host: str) -> bool:
    """Whether `host` binds to this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def check_exposure(host: str, settings: ServeSettings, insecure_no_auth: bool) -> None:
    """Refuse to serve beyond this machine without a token, unless explicitly told to.

    Raises:
        ValueError: non-loopback `host`, no token, and not `insecure_no_auth`.
    """
    if settings.api_token or is_loopback(host) or insecure_no_auth:
        return
    raise ValueError(
        f"refusing to listen on {host} without access control: set BRAINTUMOR_API_TOKEN (clients then send "
        "'Authorization: Bearer <token>'), bind to 127.0.0.1, or pass --insecure-no-auth if a proxy in front "
        "authenticates users"
    )
