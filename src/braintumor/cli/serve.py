"""`braintumor serve`: the web page and API (uvicorn), configured from flags and BRAINTUMOR_* variables."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from braintumor import DISCLAIMER
from braintumor.cli.predict import MODEL_HELP

if TYPE_CHECKING:
    from fastapi import FastAPI

    from braintumor.serve.settings import ServeSettings


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web service and page (FastAPI, uvicorn)")
    p.add_argument("--model", help=MODEL_HELP + " (default: $BRAINTUMOR_MODEL, else 'default')")
    p.add_argument("--backend", choices=("torch", "onnx"), help="default: $BRAINTUMOR_BACKEND, else torch")
    p.add_argument("--host", default="127.0.0.1", help="non-loopback hosts need BRAINTUMOR_API_TOKEN")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (each loads the model)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve beyond loopback without a token")
    p.add_argument("--cors-origin", action="append", default=None, help="allow this browser origin (repeatable)")
    p.add_argument("--max-file-mb", type=float, help="per-file upload limit (default 20)")
    p.add_argument("--max-request-mb", type=float, help="per-request upload limit (default 64)")
    p.add_argument("--max-files", type=int, help="files per request (default 16)")
    p.add_argument("--concurrency", type=int, help="requests processed at once per worker (default 2)")
    p.add_argument("--threads", type=int, help="CPU threads for the model per worker (default: one per core)")
    p.add_argument(
        "--max-side", type=int, help="shrink larger scans to this many px on the long side first (default 2048)"
    )
    p.add_argument(
        "--upload-timeout", type=float, help="seconds a request may take to send its body, then 408 (default 60)"
    )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from braintumor.models.default import resolve_model_path
    from braintumor.serve.settings import check_exposure

    flags = {
        "model": args.model,
        "backend": args.backend,
        "cors_origins": ",".join(args.cors_origin) if args.cors_origin else None,
        "max_file_bytes": args.max_file_mb,
        "max_request_bytes": args.max_request_mb,
        "max_files": args.max_files,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "max_side": args.max_side,
        "upload_timeout": args.upload_timeout,
    }
    # Each uvicorn worker process builds its app from the environment (app_from_env below).
    os.environ.update({ENV[k]: str(v) for k, v in flags.items() if v is not None})
    settings = settings_from_env()
    check_exposure(args.host, settings, args.insecure_no_auth)
    resolve_model_path(settings.model)  # fail here, with the reason, rather than in every worker
    sock = _bind(args.host, args.port)  # a busy port fails now, before any worker loads the model
    auth = "bearer token required on /api" if settings.api_token else "no access token (loopback only)"
    print(f"braintumor serve: http://{args.host}:{args.port}/ ({auth}). {DISCLAIMER}", file=sys.stderr)
    uvicorn.run(
        "braintumor.cli.serve:app_from_env",
        factory=True,
        fd=sock.fileno(),
        workers=args.workers,
        log_level=args.log_level,
        server_header=False,
    )
    return 0


ENV = {
    "model": "BRAINTUMOR_MODEL",
    "backend": "BRAINTUMOR_BACKEND",
    "api_token": "BRAINTUMOR_API_TOKEN",
    "cors_origins": "BRAINTUMOR_CORS_ORIGINS",  # comma-separated
    "max_file_bytes": "BRAINTUMOR_MAX_FILE_MB",
    "max_request_bytes": "BRAINTUMOR_MAX_REQUEST_MB",
    "max_files": "BRAINTUMOR_MAX_FILES",
    "concurrency": "BRAINTUMOR_CONCURRENCY",
    "threads": "BRAINTUMOR_THREADS",
    "max_side": "BRAINTUMOR_MAX_SIDE",
    "upload_timeout": "BRAINTUMOR_UPLOAD_TIMEOUT_S",
    "max_buffered_bytes": "BRAINTUMOR_MAX_BUFFERED_MB",
}


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ValueError saying that the address is taken or not this machine's."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise ValueError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); another server may be using the port: "
            "choose another with --port"
        ) from None
    sock.set_inheritable(True)  # uvicorn's worker processes serve on it too
    return sock


def settings_from_env(env: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from `BRAINTUMOR_*` variables (see `ENV`); unset ones keep `ServeSettings` defaults.

    Raises:
        ValueError: a variable that is not a number where one is needed, or invalid settings.
    """
    from braintumor.serve.settings import ServeSettings

    env = os.environ if env is None else env
    values: dict = {}
    for name, var in ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            if name in ("max_file_bytes", "max_request_bytes", "max_buffered_bytes"):
                values[name] = int(float(raw) * 2**20)
            elif name in ("max_files", "concurrency", "threads", "max_side"):
                values[name] = int(raw)
            elif name == "upload_timeout":
                values[name] = float(raw)
            elif name == "cors_origins":
                values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
            else:
                values[name] = raw
        except (ValueError, OverflowError):  # int(float("inf")) overflows
            raise ValueError(f"{var}={raw!r} is not a finite number") from None
    return ServeSettings(**values)


def app_from_env() -> FastAPI:
    """The app configured from the environment: the factory `braintumor serve` gives each uvicorn worker."""
    from braintumor.serve.app import create_app

    return create_app(settings_from_env())
