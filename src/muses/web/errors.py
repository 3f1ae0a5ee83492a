"""What a visitor sees when a request fails: a page for the pages, JSON ({"detail": ...}) for
the API and its docs. Every failure says what happened; none is a bare 500."""
from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
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


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    if _wants_json(request):
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
    return _answer(request, 422, f"the address has a bad value ({problems})")


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
