"""What a visitor sees when a request fails: a page for the pages, JSON ({"detail": ...}) for
the API and its docs. Every failure says what happened; none is a bare 500."""
from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from muses.errors import MusesError
from muses.web.guard import DOC_PATHS
from muses.web.templating import templates

# Page titles in plain words; other statuses use the standard reason phrase.
TITLES = {403: "Not allowed", 404: "Not found", 413: "Too large", 422: "Bad address",
          500: "Something went wrong", 503: "Not available"}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", *DOC_PATHS))


def _answer(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status, headers=headers)
    return templates.TemplateResponse(request, "error.html", {
        "status": status, "title": TITLES.get(status) or HTTPStatus(status).phrase, "message": message,
    }, status_code=status, headers=headers)


async def http_error(request: Request, exc: HTTPException) -> Response:
    return _answer(request, exc.status_code, str(exc.detail), exc.headers)


def storable_text(text: str) -> bool:
    """Whether ``text`` can be stored and sent back as UTF-8: no NUL, no lone UTF-16 surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe(value: object, limit: int = 100) -> str | int:
    """A location part as it may be sent back: short, and printable as UTF-8."""
    if isinstance(value, int):
        return value
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def _problems(exc: RequestValidationError) -> list[dict]:
    # FastAPI's own answer repeats the input: 10 MB sent, 10 MB sent back (and a lone surrogate
    # in it made the answer itself fail). Where and why is enough.
    return [{"loc": [_safe(part) for part in e.get("loc", ())], "msg": _safe(e.get("msg", ""), 300),
             "type": _safe(e.get("type", ""))} for e in exc.errors()[:20]]


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = _problems(exc)
    if _wants_json(request):
        return JSONResponse({"detail": problems}, 422)
    text = "; ".join(f"{p['loc'][-1] if p['loc'] else 'request'}: {p['msg']}" for p in problems)
    return _answer(request, 422, f"the address has a bad value ({text})")


async def muses_error(request: Request, exc: MusesError) -> Response:
    # Raised by the project's own files (a broken definitions.toml, say), not by the visitor.
    return _answer(request, 503, f"the server cannot answer: {exc}")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # Starlette raises the exception again after this answer: the server logs its traceback.
    return _answer(request, 500, "muses failed on this request (a bug); the server's log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(MusesError, muses_error)
    app.add_exception_handler(Exception, unexpected_error)
