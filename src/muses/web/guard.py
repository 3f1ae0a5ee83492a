"""Protection every request gets: a bounded body, no state change from another site's page,
security headers."""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from muses.web.uploads import size_text

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Our pages load only their own CSS, JS and images; /docs loads Swagger UI from a CDN.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
# Swagger UI and ReDoc come from jsdelivr (their scripts, styles, fonts) and run an inline
# script; they are never framed either.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(bound_host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names a server bound to ``bound_host`` answers: this machine's names, the bound
    address and ``extra`` (muses.toml [web] allowed_hosts, --allowed-host)."""
    names = [*LOCAL_HOSTS, bound_host, *extra]
    return tuple(dict.fromkeys(n.strip().lower().strip("[]") for n in names if n.strip()))


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostAllowList:
    """Answers only requests whose Host header names this server (DNS rebinding: a page of
    evil.example whose name is made to resolve to 127.0.0.1 sends ``Host: evil.example``).
    ``"*"`` in ``hosts`` answers any Host (only behind a proxy that checks it)."""

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            return await self.app(scope, receive, send)
        host = Headers(scope=scope).get("host", "")
        if host_name(host) in self.hosts:
            return await self.app(scope, receive, send)
        shown = host if len(host) <= 80 else host[:80] + "..."
        await PlainTextResponse(
            f"refused: Host {shown!r} is not a name of this server; if it is (a reverse proxy, a machine "
            "name), start it with `muses serve --allowed-host NAME` or add NAME to [web] allowed_hosts "
            "in muses.toml", 400)(scope, receive, send)


def same_origin(request: Request) -> None:
    """Refuse a state-changing request sent by a page of another site (cross-site request
    forgery). Browsers name the sending page's origin in Origin (or at least Referer); clients
    that are not browsers (curl, scripts) send neither and are let through."""
    if request.method not in UNSAFE_METHODS:
        return
    sender = request.headers.get("origin") or request.headers.get("referer")
    if sender is None:
        return
    # Behind a reverse proxy that rewrites Host, the proxy names the original in X-Forwarded-Host.
    # A page of another site cannot set that header on a request a browser sends without asking.
    ours = {h.strip().lower() for h in (request.headers.get("host", ""),
                                        request.headers.get("x-forwarded-host", "").split(",")[0]) if h.strip()}
    # "null" (a sandboxed or privacy-sensitive page) has no host and is refused too.
    if urlsplit(sender).netloc.lower() not in ours:
        raise HTTPException(403, f"refused: this request came from another site's page ({sender}), not from "
                                 f"{request.headers.get('host', '')}; use the muses pages or call the API without "
                                 "a browser (behind a reverse proxy, pass the Host or X-Forwarded-Host header on)")


class BodyTooLarge(HTTPException):
    def __init__(self, max_upload_bytes: int):
        super().__init__(413, f"the upload is larger than {size_text(max_upload_bytes)}; send a smaller photo")


class BodyLimit:
    """Stops reading a request body past ``max_upload_bytes + overhead``: counted while it is read,
    so a chunked body (no Content-Length) is cut off too, and never spooled to disk in full.

    The error is raised from ``receive``, inside the route that reads the body, so the app's
    error handlers answer it (a page for pages, JSON for the API)."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, overhead: int):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_body = max_upload_bytes + overhead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > self.max_body
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            if too_large:  # refused before a byte of the body is read
                raise BodyTooLarge(self.max_upload_bytes)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise BodyTooLarge(self.max_upload_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BodyTooLarge as exc:  # read outside a route (a middleware): answer here
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, exc.status_code)(scope, receive, send)


class SecurityHeaders:
    """nosniff, our Content-Security-Policy (the docs' own for /docs and /redoc, which load
    Swagger UI and ReDoc from a CDN), and no framing, everywhere."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"].startswith(DOC_PATHS) else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Content-Security-Policy"] = csp
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)
