"""The service's shared state (model, limits, worker slots) and its typed FastAPI dependency.

CPU work (decoding, preprocessing, the forward pass, Grad-CAM) runs in worker threads, at most
`settings.concurrency` at once (an anyio CapacityLimiter), so the event loop keeps answering /health and
new connections while scans are processed. Receiving a body is bounded in time (`upload_timeout`, then
408) and in bytes held by all bodies being received (`max_buffered_bytes`, then 503); only a whole request
is admitted, and beyond `concurrency + max_queue` whole requests the next gets 503 at once. So slow clients
hold no place that a complete request needs, and memory is bounded by the buffered bytes plus the admitted
requests times the request-size limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request

from braintumor.inference import Prediction, Predictor, read_input
from braintumor.serve.settings import ServeSettings
from braintumor.serve.uploads import ApiError, ByteBudget, Upload, UploadLimits, read_uploads

T = TypeVar("T")


@dataclass
class Service:
    """What every request handler needs: the Predictor (loaded once), the settings and the worker slots."""

    predictor: Predictor
    settings: ServeSettings
    limiter: anyio.CapacityLimiter = field(init=False)
    budget: ByteBudget = field(init=False)  # bytes of bodies being received
    active: int = 0  # admitted whole requests: waiting for a slot or being processed

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.settings.concurrency)
        self.budget = ByteBudget(self.settings.max_buffered_bytes)

    @property
    def limits(self) -> UploadLimits:
        s = self.settings
        return UploadLimits(s.max_file_bytes, s.max_request_bytes, s.max_files)

    async def receive(self, request: Request, fields: tuple[str, ...] = ("files", "file")) -> list[Upload]:
        """The uploaded files, read within `upload_timeout` seconds and the shared byte budget.

        Raises:
            ApiError: 408 when the body takes longer, and whatever `read_uploads` refuses.
        """
        timeout = self.settings.upload_timeout
        try:
            with anyio.fail_after(timeout):
                return await read_uploads(request, self.limits, self.budget, fields)
        except TimeoutError:
            raise ApiError(408, f"the upload took longer than {timeout:g} s; send the scans again") from None

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the `concurrency + max_queue` places for a received request; 503 when none is free."""
        if self.active >= self.settings.concurrency + self.settings.max_queue:
            raise ApiError(503, "the server is busy; retry in a few seconds")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run CPU-bound `fn` in a worker thread when a slot is free."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.limiter)

    def predict(self, uploads: list[Upload]) -> list[Prediction]:
        """Decode and predict uploaded files (runs in a worker thread)."""
        side = self.settings.max_side
        return self.predictor.predict_inputs([read_input(u.data, name=u.name, max_side=side) for u in uploads])

    def explain(self, upload: Upload, target: str | None, method: str, colorbar: bool) -> tuple[Prediction, bytes]:
        """Predict one upload and, when it is an accepted scan, its Grad-CAM overlay PNG (worker thread)."""
        item = read_input(upload.data, name=upload.name, max_side=self.settings.max_side)
        prediction = self.predictor.predict_inputs([item])[0]
        if prediction.label is None or item.scan is None:
            return prediction, b""
        # without a target the map explains the reported label, not the explainer's own single-view argmax
        target = target or prediction.label
        png, _ = self.predictor.explain_png(item.scan, target=target, method=method, colorbar=colorbar)
        return prediction, png


def get_service(request: Request) -> Service:
    """The Service created in the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
