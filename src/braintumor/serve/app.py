"""The FastAPI app factory; the only module of the service that reads environment variables.

`create_app(settings)` builds the app; the model is loaded once, in the lifespan, and handed to routes by
the typed `ServiceDep` dependency. `app_from_env()` is the factory uvicorn imports in each worker process
(`braintumor serve` puts its flags into the environment variables listed in `ENV`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from braintumor import DISCLAIMER, __version__
from braintumor.inference import load_predictor
from braintumor.serve.routes import api, public
from braintumor.serve.security import SecurityHeaders
from braintumor.serve.service import Service
from braintumor.serve.settings import ServeSettings
from braintumor.serve.uploads import ApiError

log = logging.getLogger("braintumor.serve")
STATIC = files("braintumor.serve") / "static"
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
}


def settings_from_env(env: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from `BRAINTUMOR_*` variables (see `ENV`); unset ones keep `ServeSettings` defaults.

    Raises:
        ValueError: a variable that is not a number where one is needed, or invalid settings.
    """
    env = os.environ if env is None else env
    values: dict = {}
    for name, var in ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            if name in ("max_file_bytes", "max_request_bytes"):
                values[name] = int(float(raw) * 2**20)
            elif name in ("max_files", "concurrency", "threads", "max_side"):
                values[name] = int(raw)
            elif name == "cors_origins":
                values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
            else:
                values[name] = raw
        except (ValueError, OverflowError):  # int(float("inf")) overflows
            raise ValueError(f"{var}={raw!r} is not a finite number") from None
    return ServeSettings(**values)


def create_app(settings: ServeSettings) -> FastAPI:
    """The web service: the page at `/`, the API under `/api/v1`, OpenAPI docs at `/docs`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        predictor = await anyio.to_thread.run_sync(
            lambda: load_predictor(
                settings.model, backend=settings.backend, threads=settings.threads, batch_size=settings.batch_size
            )
        )
        app.state.service = Service(predictor, settings)
        log.info("model %s loaded (%s backend)", predictor.card.get("model_id"), predictor.card.get("backend"))
        yield
        app.state.service = None

    app = FastAPI(
        title="braintumor",
        version=__version__,
        description=f"Brain-tumour MRI classification. **{DISCLAIMER}**",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = None
    _add_error_handlers(app)
    app.include_router(public)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    if settings.cors_origins:  # closed by default: without origins the browser's same-origin policy applies
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=[
                "X-Braintumor-Label",
                "X-Braintumor-Confidence",
                "X-Braintumor-Target",
                "X-Braintumor-Disclaimer",
            ],
        )
    app.add_middleware(SecurityHeaders)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal is JSON `{"detail": ..., "files": ...}`; unexpected errors say nothing about internals."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # the body of a too slow or too large upload was not read to its end: the connection cannot be reused
        headers = {"Connection": "close"} if exc.status in (408, 413) else None
        return JSONResponse({"detail": exc.message, "files": exc.files}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "files": None}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"invalid request: {problems}", "files": None}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while handling a request")
        return JSONResponse({"detail": "internal error; the server log has the details", "files": None}, 500)


def app_from_env() -> FastAPI:
    """The app configured from the environment: the factory `braintumor serve` gives uvicorn."""
    return create_app(settings_from_env())
