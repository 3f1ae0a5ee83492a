"""Protection every request gets: no state change from another site's page, security headers.
(The request body is bounded by FastAPI's ``max_body_size``, counted while it is read.)"""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Our pages load only their own CSS, JS and images; /docs loads Swagger UI from a CDN.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")


def same_origin(request: Request) -> None:
    """Refuse a state-changing request sent by a page of another site (cross-site request
    forgery). Browsers name the sending page's origin in Origin (or at least Referer); clients
    that are not browsers (curl, scripts) send neither and are let through."""
    if request.method not in UNSAFE_METHODS:
        return
    sender = request.headers.get("origin") or request.headers.get("referer")
    if sender is None:
        return
    host = request.headers.get("host", "")
    # "null" (a sandboxed or privacy-sensitive page) has no host and is refused too.
    if urlsplit(sender).netloc.lower() != host.lower():
        raise HTTPException(403, f"refused: this request came from another site's page ({sender}), not from "
                                 f"{host}; use the muses pages or call the API without a browser")


class SecurityHeaders:
    """nosniff everywhere, and our Content-Security-Policy on everything but the API docs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        with_csp = not scope["path"].startswith(DOC_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if with_csp:
                    headers["Content-Security-Policy"] = CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)
