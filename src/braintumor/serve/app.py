"""The FastAPI app factory: `create_app(settings)` builds the app from one `ServeSettings` object.

The model is loaded once, in the lifespan, and handed to routes by the typed `ServiceDep` dependency.
Nothing in the service reads environment variables or argv: `braintumor serve` (cli/serve.py) builds the
settings from its flags and BRAINTUMOR_* variables.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
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
