"""Access control and browser-facing hardening: bearer token, security headers.

The token comparison is constant-time (`hmac.compare_digest`) and every failure gives the same bare 401,
so a client learns neither whether a token was expected in some form nor how close a guess was.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI page loads its script and style from a CDN and starts them with an inline script;
# only /docs gets these sources, every other response keeps the strict policy.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")


_BEARER = HTTPBearer(auto_error=False, description="needed only when the server sets BRAINTUMOR_API_TOKEN")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None
) -> None:
    """FastAPI dependency: with a token configured, the request must carry `Authorization: Bearer <token>`.

    FastAPI's HTTPBearer parses the header (None for a missing one or another scheme) and puts the scheme
    into the OpenAPI document (the /docs "Authorize" button); every failure gives the same bare 401.
    """
    expected: str | None = request.app.state.settings.api_token
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="unauthorized", headers={"WWW-Authenticate": "Bearer"})


class SecurityHeaders:
    """ASGI middleware adding CSP, nosniff, frame and referrer policies, and no-store on API responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                csp = DOCS_CSP if path in DOCS_PATHS else PAGE_CSP
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                if path.startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))  # results about a patient's scan
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
