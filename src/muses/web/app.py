"""The web app: upload a photo to see its classes and similar objects; browse the collection.

Server-rendered pages (Jinja2, :mod:`muses.web.pages`) and a JSON API for the same things
(:mod:`muses.web.api`, documented at /docs), sharing one :class:`~muses.web.state.AppState`.
Read-only unless created with ``allow_writes``: no request changes the collection then.
Images are served by their id in the store, never by a path from the request.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from muses import __version__
from muses.settings import Project, find_project
from muses.web import api, errors, pages, review, values
from muses.web import map as map_page
from muses.web.guard import BodyLimit, HostAllowList, SecurityHeaders, same_origin
from muses.web.state import AppState, Limits
from muses.web.templating import HERE
from muses.web.uploads import MAX_BYTES, MAX_UPLOAD_PIXELS

FORM_OVERHEAD = 64 * 1024  # multipart headers around the file
# Requests a process answers at once on a client-server database (each in a thread of its own;
# the others wait their turn in the event loop). With anyio's default of 40 threads, those
# above SQLAlchemy's pool (5 kept, up to 10 more opened and closed again: on PostgreSQL a new
# server process each time) waited for a connection: item pages under 50 clients had a p95 of
# 1.2 s on PostgreSQL, 0.35 s with 8 (0.67 s with 15). On SQLite, where a connection costs
# nothing, the default did a little better (p95 about 15 % lower in back-to-back runs), so it stays.
THREADS = 8


@asynccontextmanager
async def _threads(app: FastAPI):  # set in the server's event loop, which owns the limiter
    if app.state.muses.store.engine.dialect.name != "sqlite":
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


def create_app(
    project: Project | str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    *,
    allow_writes: bool = False,
    reviewer: str = "",
    max_upload_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
    similar_limit: int = 12,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """The app for ``project`` (default: $MUSES_PROJECT or the current folder) and its model
    (default: muses.toml's model_path; loaded on first use, so browsing works without one).

    ``allowed_hosts``: the Host names it answers (:func:`muses.web.guard.allowed_hosts`; `muses
    serve` always passes them); None answers any Host, for an app mounted in a server that
    checks Host itself."""
    limits = Limits(max_upload_bytes, max_pixels, similar_limit)
    proj = project if isinstance(project, Project) else find_project(project)
    app = FastAPI(
        title="muses",
        version=__version__,
        description="Classify a photo against the museum's model and find similar objects; browse the "
                    "collection with its naive labels and predicted classes.",
        dependencies=[Depends(same_origin)],
        lifespan=_threads,
    )
    app.state.muses = AppState(proj, Path(model_path) if model_path else proj.model_path, limits, allow_writes, reviewer)
    app.add_middleware(BodyLimit, max_upload_bytes=max_upload_bytes, overhead=FORM_OVERHEAD)
    if allowed_hosts is not None:
        app.add_middleware(HostAllowList, hosts=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(review.router)
    app.include_router(map_page.router)
    app.include_router(values.router)
    errors.install(app)
    return app
